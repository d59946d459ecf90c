package fake

import (
	"fmt"
	"regexp"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
)

// spec is what a simulated server takes from its user-data.
type spec struct {
	cfg    cloudinit.Config
	users  []user
	groups []string // every group that exists on the server
}

type user struct {
	name     string
	groups   []string // its own group first
	nopasswd bool     // its sudo rule needs no password
	keys     []gossh.PublicKey
}

// validName is what useradd and groupadd accept (Debian's default
// NAME_REGEX, without the trailing $ of machine accounts).
var validName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// systemGroups exist on every simulated server, as on a Debian image.
var systemGroups = []string{"root", "adm", "sudo", "users", "nogroup", "systemd-journal", "www-data"}

// parseUserData reads user-data as cloud-config and refuses what would be
// a dead server: a document that does not parse, no phone_home URL, or no
// user with a usable SSH key. Errors wrap provider.ErrInvalid.
func parseUserData(data []byte) (spec, error) {
	cfg, err := cloudinit.Parse(data)
	if err != nil {
		return spec{}, fmt.Errorf("%w: user-data: %w", provider.ErrInvalid, err)
	}
	if cfg.PhoneHome == nil || strings.TrimSpace(cfg.PhoneHome.URL) == "" {
		return spec{}, fmt.Errorf("%w: user-data has no phone_home url: the server would never report", provider.ErrInvalid)
	}
	sp := spec{cfg: cfg}
	groups := map[string]bool{}
	for _, g := range systemGroups {
		groups[g] = true
		sp.groups = append(sp.groups, g)
	}
	addGroup := func(g string) {
		if !groups[g] {
			groups[g] = true
			sp.groups = append(sp.groups, g)
		}
	}
	seen := map[string]bool{}
	withKeys := 0
	for i, u := range cfg.Users {
		if !validName.MatchString(u.Name) {
			return spec{}, fmt.Errorf("%w: users[%d]: name %q is not a valid user name", provider.ErrInvalid, i, u.Name)
		}
		if seen[u.Name] {
			return spec{}, fmt.Errorf("%w: users[%d]: user %q listed twice", provider.ErrInvalid, i, u.Name)
		}
		seen[u.Name] = true
		su := user{name: u.Name, groups: []string{u.Name}, nopasswd: strings.Contains(u.Sudo, "NOPASSWD")}
		if u.Name == "root" {
			su.nopasswd = true
		}
		addGroup(u.Name)
		for _, g := range u.Groups {
			if !validName.MatchString(g) {
				return spec{}, fmt.Errorf("%w: users[%d]: group %q is not a valid group name", provider.ErrInvalid, i, g)
			}
			addGroup(g)
			su.groups = append(su.groups, g)
		}
		for _, line := range u.SSHAuthorizedKeys {
			// sshd ignores lines it cannot parse; so does the simulation.
			k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
			if err == nil {
				su.keys = append(su.keys, k)
			}
		}
		if len(su.keys) > 0 {
			withKeys++
		}
		sp.users = append(sp.users, su)
	}
	if withKeys == 0 {
		return spec{}, fmt.Errorf("%w: user-data has no user with an SSH key: nobody could log in", provider.ErrInvalid)
	}
	for i, f := range cfg.WriteFiles {
		if !strings.HasPrefix(f.Path, "/") {
			return spec{}, fmt.Errorf("%w: write_files[%d]: path %q is not absolute", provider.ErrInvalid, i, f.Path)
		}
	}
	return sp, nil
}

func (sp spec) user(name string) (user, bool) {
	for _, u := range sp.users {
		if u.name == name {
			return u, true
		}
	}
	return user{}, false
}

// shellFuncs returns the stand-ins' user and group tests, answered from
// the cloud-config without reading a file: user_exists NAME,
// user_nopasswd NAME (its sudo rule has NOPASSWD), group_exists NAME and
// in_group USER GROUP. root exists, may sudo and is in the root group
// only; the names are valid user and group names (validName).
func (sp spec) shellFuncs() string {
	users, nopasswd, members := []string{"root"}, []string{"root"}, []string{"root:root"}
	for _, u := range sp.users {
		if u.name == "root" {
			continue
		}
		users = append(users, u.name)
		if u.nopasswd {
			nopasswd = append(nopasswd, u.name)
		}
		for _, g := range u.groups {
			members = append(members, u.name+":"+g)
		}
	}
	pattern := func(names []string) string {
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = shellQuote(n)
		}
		return strings.Join(q, " | ")
	}
	var b strings.Builder
	b.WriteString("# The cloud-config's users and groups.\n")
	fmt.Fprintf(&b, "user_exists() { case $1 in %s) return 0 ;; esac; return 1; }\n", pattern(users))
	fmt.Fprintf(&b, "user_nopasswd() { case $1 in %s) return 0 ;; esac; return 1; }\n", pattern(nopasswd))
	fmt.Fprintf(&b, "group_exists() { case $1 in %s) return 0 ;; esac; return 1; }\n", pattern(sp.groups))
	fmt.Fprintf(&b, "in_group() { case $1:$2 in %s) return 0 ;; esac; return 1; }\n", pattern(members))
	return b.String()
}
