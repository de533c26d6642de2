package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func TestOpenSSHFlags(t *testing.T) {
	dir := t.TempDir()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(good, []byte(k.Public().String()+" root@host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rsa := filepath.Join(dir, "rsa.pub")
	os.WriteFile(rsa, []byte("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x\n"), 0o644)
	junk := filepath.Join(dir, "junk.pub")
	os.WriteFile(junk, []byte("not a key\n"), 0o644)

	f := runFlags{sshAdvertise: "192.0.2.1:22", packetPort: "127.0.0.1:7600", sshHostKey: good}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	o, err := f.openSSH()
	if err != nil {
		t.Fatal(err)
	}
	if o.HostKey != k.Public() || o.User != "tunnelmesh" || o.PacketPort != 7600 {
		t.Fatalf("openSSH() = %+v, want host key %s, user tunnelmesh, port 7600", o, k.Public().ShortID())
	}
	f.sshUser = "mesh"
	if o, err := f.openSSH(); err != nil || o.User != "mesh" {
		t.Fatalf("openSSH() with --ssh-user mesh = %+v, %v", o, err)
	}
	for _, bad := range []string{rsa, junk, filepath.Join(dir, "missing.pub")} {
		f.sshHostKey = bad
		if o, err := f.openSSH(); err == nil || !strings.Contains(err.Error(), "--ssh-openssh-host-key") {
			t.Errorf("openSSH() with host key file %s = %+v, %v; want an error naming the flag", filepath.Base(bad), o, err)
		}
	}
	if o, err := (&runFlags{}).openSSH(); o != nil || err != nil {
		t.Fatalf("openSSH() without the flag = %+v, %v; want nil, nil", o, err)
	}
}

func TestParseSSHAdvertise(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"", "invalid AddrPort", true},
		{"192.0.2.1:22", "192.0.2.1:22", true},
		{"[2001:db8::1]:2222", "[2001:db8::1]:2222", true},
		{":2222", "0.0.0.0:2222", true},
		{":0", "", false},
		{":x", "", false},
		{":70000", "", false},
		{"0.0.0.0:22", "", false},
		{"192.0.2.1:0", "", false},
		{"host:22", "", false},
		{"192.0.2.1", "", false},
	} {
		got, err := parseSSHAdvertise(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got.String() != tt.want) {
			t.Errorf("parseSSHAdvertise(%q) = %v, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
