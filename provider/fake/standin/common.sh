# Helpers shared by the simulated server's stand-ins. Prepended to every
# stand-in after the generated prelude that sets ROOT (the simulated file
# system), STATE (the simulation's own state) and HOST (the hostname).

# me is the simulated user running this command: the SSH user, or the
# target of the sudo stand-in.
me=${HATCHERY_FAKE_USER:-root}

is_root() { [ "$me" = root ]; }

now() { date '+%b %d %H:%M:%S'; }

# jlog UNIT MESSAGE... appends one line to UNIT's simulated journal.
jlog() {
	_u=$1
	shift
	mkdir -p "$STATE/journal"
	printf '%s %s %s\n' "$(now)" "$HOST" "$*" >>"$STATE/journal/$_u"
}

# The users file has one line per user: name:nopasswd(0|1):group,group,...
user_exists() {
	case $1 in '' | *[!a-z0-9_.-]*) return 1 ;; esac
	grep -q "^$1:" "$STATE/users"
}

user_nopasswd() {
	user_exists "$1" && grep -q "^$1:1:" "$STATE/users"
}

# user_groups NAME prints NAME's groups, one a line (its own group first).
user_groups() {
	user_exists "$1" || return 1
	grep "^$1:" "$STATE/users" | head -n 1 | cut -d: -f3 | tr ',' '\n'
}

group_exists() {
	case $1 in '' | *[!a-z0-9_.-]*) return 1 ;; esac
	grep -q "^$1\$" "$STATE/groups"
}

in_group() { user_groups "$1" | grep -qx "$2"; }

# can_read_journal: root and members of adm or systemd-journal read the
# system journal, as on Debian.
can_read_journal() { is_root || in_group "$me" adm || in_group "$me" systemd-journal; }

# unit_name NAME appends .service to a name without a unit type.
unit_name() {
	case $1 in
	*.service | *.socket | *.timer | *.target | *.path | *.mount | *.slice | *.scope) printf '%s\n' "$1" ;;
	*) printf '%s.service\n' "$1" ;;
	esac
}

# abspath FILE prints FILE's absolute physical path without resolving
# FILE itself (a symbolic link stays the link): the path of its directory,
# then its name. It fails when the directory does not exist.
abspath() {
	_d=$(cd -- "$(dirname -- "$1")" 2>/dev/null && pwd -P) || return 1
	_b=$(basename -- "$1")
	case $_b in
	/) printf '/\n' ;;
	.) printf '%s\n' "$_d" ;;
	*) printf '%s\n' "${_d%/}/$_b" ;;
	esac
}

valid_unit() {
	case $1 in '' | */* | .* | *[!A-Za-z0-9@_.:-]*) return 1 ;; esac
	return 0
}
