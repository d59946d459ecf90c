package cloudinit_test

import (
	"errors"
	"fmt"

	"github.com/hatchery-dev/hatchery/cloudinit"
)

func Example() {
	cfg := cloudinit.Config{
		Hostname: "tenant-1",
		Users: []cloudinit.User{{
			Name:  "app",
			Shell: "/bin/bash",
			Sudo:  "ALL=(ALL) NOPASSWD:ALL",
		}},
		PackageUpdate: true,
		Packages:      []string{"git"},
		WriteFiles: []cloudinit.File{{
			Path:        "/etc/motd",
			Content:     "managed by hatchery\n",
			Permissions: "0644",
		}},
		RunCmd: []cloudinit.Command{
			cloudinit.StopOnError(),
			cloudinit.RunAs("app", cloudinit.Command{"git", "clone", "https://github.com/polly3223/Rachel8.git", "/home/app/rachel8"}),
			cloudinit.Shell("echo done > /var/log/bootstrap.log"),
		},
		PhoneHome: &cloudinit.PhoneHome{
			URL:  "https://control.example.com/callback/$INSTANCE_ID",
			Post: []string{"pub_key_ed25519", "instance_id", "hostname", "fqdn"},
		},
	}
	out, err := cloudinit.Build(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// #cloud-config
	// hostname: tenant-1
	// users:
	//   - name: app
	//     shell: /bin/bash
	//     sudo: ALL=(ALL) NOPASSWD:ALL
	// package_update: true
	// packages:
	//   - git
	// write_files:
	//   - path: /etc/motd
	//     content: |
	//       managed by hatchery
	//     permissions: "0644"
	// runcmd:
	//   - - set
	//     - -e
	//   - - runuser
	//     - -u
	//     - app
	//     - --
	//     - git
	//     - clone
	//     - https://github.com/polly3223/Rachel8.git
	//     - /home/app/rachel8
	//   - - sh
	//     - -c
	//     - echo done > /var/log/bootstrap.log
	// phone_home:
	//   url: https://control.example.com/callback/$INSTANCE_ID
	//   post:
	//     - pub_key_ed25519
	//     - instance_id
	//     - hostname
	//     - fqdn
	//   tries: 10
}

func ExampleBuild_errors() {
	cfg := cloudinit.Config{
		Users: []cloudinit.User{{Name: "Rachel"}},
	}
	_, err := cloudinit.Build(cfg)
	var fe *cloudinit.FieldError
	fmt.Println(errors.Is(err, cloudinit.ErrInvalid), errors.As(err, &fe) && fe.Field == "users[0].name")

	cfg = cloudinit.Config{
		RunCmd:  []cloudinit.Command{cloudinit.Shell("echo TOKEN=hunter2-but-longer >> /etc/app.env")},
		Secrets: []string{"hunter2-but-longer"},
	}
	_, err = cloudinit.Build(cfg)
	fmt.Println(err)

	cfg = cloudinit.Config{Hostname: "tenant-1", MaxSize: 16}
	_, err = cloudinit.Build(cfg)
	var se *cloudinit.SizeError
	fmt.Println(errors.Is(err, cloudinit.ErrTooLarge), errors.As(err, &se) && se.Limit == 16)
	// Output:
	// true true
	// cloudinit: secret in user-data: a value listed in Config.Secrets (Secrets[0]) in runcmd[0][2]
	// true true
}

func ExampleParse() {
	cfg, err := cloudinit.Build(cloudinit.Config{Hostname: "tenant-1", Compress: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	back, err := cloudinit.Parse(cfg)
	fmt.Println(back.Hostname, err)
	// Output: tenant-1 <nil>
}
