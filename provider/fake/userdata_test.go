package fake

import (
	"errors"
	"testing"

	"github.com/hatchery-dev/hatchery/provider"
)

// FuzzParseUserData: never a panic; what is accepted can boot (a
// phone_home URL, a user with a key, absolute write_files paths, valid
// names); what is refused wraps provider.ErrInvalid.
func FuzzParseUserData(f *testing.F) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPqlSE5ZsA6IlcKoTG7D3nT2TMCgp/p/L1eHjMKdFxg root@srv"
	for _, s := range []string{
		"#cloud-config\nusers:\n  - name: rachel\n    ssh_authorized_keys: [\"" + key + "\"]\nphone_home:\n  url: http://x/$INSTANCE_ID\n",
		"#cloud-config\nusers:\n  - name: a\n    groups: [adm, sudo]\n    ssh_authorized_keys: [\"" + key + "\"]\nwrite_files:\n  - path: /etc/x\n    content: aGk=\n    encoding: b64\nphone_home:\n  url: http://x\n  post: []\n",
		"#cloud-config\n",
		"H4sIAAAAAAAA/wMAAAAAAAAAAAA=",
		"#!/bin/sh\n",
		"#cloud-config\nusers: 3\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := parseUserData(data)
		if err != nil {
			if !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if sp.cfg.PhoneHome == nil || sp.cfg.PhoneHome.URL == "" {
			t.Fatal("accepted without phone_home url")
		}
		withKey := false
		for _, u := range sp.users {
			withKey = withKey || len(u.keys) > 0
			if !validName.MatchString(u.name) {
				t.Fatalf("accepted user name %q", u.name)
			}
		}
		if !withKey {
			t.Fatal("accepted without a user with a key")
		}
		for _, g := range sp.groups {
			if !validName.MatchString(g) {
				t.Fatalf("accepted group %q", g)
			}
		}
		for _, w := range sp.cfg.WriteFiles {
			if w.Path == "" || w.Path[0] != '/' {
				t.Fatalf("accepted write_files path %q", w.Path)
			}
		}
	})
}
