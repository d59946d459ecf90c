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

// Boot progress: cloud-init posts every stage's and module's start and
// finish to a webhook (callback.Handler.EventsURL gives one with a token
// bound to the server). The timeout is written out, 5 seconds when left 0.
func ExampleReporter() {
	cfg := cloudinit.Config{
		Hostname: "tenant-1",
		Reporting: map[string]cloudinit.Reporter{
			"hatchery": {Type: cloudinit.ReporterWebhook, Endpoint: "https://cp.example.com/callback/7c9e6679-7425-40de-944b-e07fc1f90ae7?token=T&event=1"},
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
	// reporting:
	//   hatchery:
	//     type: webhook
	//     endpoint: https://cp.example.com/callback/7c9e6679-7425-40de-944b-e07fc1f90ae7?token=T&event=1
	//     timeout: 5
}

// A value listed in Secrets is refused in its encodings too, and so is a
// long enough part of it.
func ExampleBuild_encodedSecret() {
	const token = "Zx9Q-c0rR3ct-H0rse-42-BaTT3ry"
	for _, arg := range []string{
		"ZXhwb3J0IFRPS0VOPVp4OVEtYzByUjNjdC1IMHJzZS00Mi1CYVRUM3J5Cg==", // base64 of "export TOKEN=...\n"
		"H0rse-42-BaTT3ry",
	} {
		_, err := cloudinit.Build(cloudinit.Config{
			RunCmd:  []cloudinit.Command{{"echo", arg}},
			Secrets: []string{token + "\n"},
		})
		fmt.Println(err)
	}
	// Output:
	// cloudinit: secret in user-data: a value listed in Config.Secrets (Secrets[0]), base64-encoded in runcmd[0][1]
	// cloudinit: secret in user-data: a 12-byte fragment of a value listed in Config.Secrets (Secrets[0]) in runcmd[0][1]
}
