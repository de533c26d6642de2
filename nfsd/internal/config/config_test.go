package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "nfsd.example.yaml"))
	if err != nil {
		t.Fatalf("Load(example) = %v", err)
	}
	if c.Port != 2049 || len(c.Exports) != 2 {
		t.Fatalf("example: port %d, %d exports; want 2049, 2", c.Port, len(c.Exports))
	}
	sh := c.Exports[0]
	if sh.Name != "shared" || sh.Dir != "/srv/nfs/shared" || *sh.Owner != (Owner{1000, 1000}) ||
		strings.Join(sh.Allow.ReadWrite, ",") != "build1,tag:ci" || strings.Join(sh.Allow.ReadOnly, ",") != "*" {
		t.Fatalf("example export 0 = %+v", sh)
	}
	if !c.Exports[1].ReadOnly {
		t.Fatalf("example export backups is not read_only")
	}
}

// TestComposeConfigParses loads the compose demo's nfsd.yaml: the export
// "shared", read-write for every node, with the agent's credentials file.
func TestComposeConfigParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "compose", "config", "nfsd.yaml"))
	if err != nil {
		t.Fatalf("Load(compose/config/nfsd.yaml) = %v", err)
	}
	if c.Credentials != "/var/lib/tunnelmesh/credentials.json" || c.Port != 2049 || len(c.Exports) != 1 {
		t.Fatalf("compose nfsd.yaml: credentials %q, port %d, %d exports; want the agent's credentials.json, 2049, 1",
			c.Credentials, c.Port, len(c.Exports))
	}
	sh := c.Exports[0]
	if sh.Name != "shared" || sh.ReadOnly || strings.Join(sh.Allow.ReadWrite, ",") != "*" {
		t.Fatalf("compose export = %+v, want shared read-write for *", sh)
	}
}

func TestRelativeCredentials(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nfsd.yaml")
	doc := "credentials: node.credentials\nexports:\n- {name: a, dir: /srv/a, allow: {read_only: ['*']}}\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "node.credentials"); c.Credentials != want {
		t.Fatalf("Credentials = %q, want %q", c.Credentials, want)
	}
}

// TestNoAllowList: an export may leave its grants to the policy's nfs
// section.
func TestNoAllowList(t *testing.T) {
	c, err := Parse([]byte("credentials: /c\nexports:\n- {name: a, dir: /srv/a}\n"))
	if err != nil {
		t.Fatalf("Parse of an export without allow = %v", err)
	}
	if a := c.Exports[0].Allow; len(a.ReadWrite)+len(a.ReadOnly) != 0 {
		t.Errorf("Allow = %+v, want empty", a)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "credentials: /c\n"
	const ok = "exports:\n- name: a\n  dir: /srv/a\n  allow: {read_only: ['*']}\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown top key", head + ok + "prot: 1\n", "prot: unknown key (line 6)"},
		{"unknown export key", head + "exports:\n- name: a\n  dir: /srv/a\n  rw: true\n", "exports[0].rw: unknown key"},
		{"unknown nested key", head + "exports:\n- name: a\n  dir: /srv/a\n  allow: {red_write: [x]}\n", "exports[0].allow.red_write: unknown key"},
		{"unknown owner key", head + "exports:\n- name: a\n  dir: /srv/a\n  owner: {user: 3}\n  allow: {read_only: ['*']}\n", "exports[0].owner.user: unknown key"},
		{"no credentials", ok, "credentials: required"},
		{"no exports", head, "exports: at least one"},
		{"bad name", head + "exports:\n- {name: ../x, dir: /srv/a, allow: {read_only: ['*']}}\n", "exports[0].name: \"../x\""},
		{"dup name", head + "exports:\n- {name: a, dir: /srv/a, allow: {read_only: ['*']}}\n- {name: a, dir: /srv/b, allow: {read_only: ['*']}}\n", "exports[1].name: \"a\" is also exports[0].name"},
		{"relative dir", head + "exports:\n- {name: a, dir: srv/a, allow: {read_only: ['*']}}\n", "exports[0].dir: \"srv/a\""},
		{"rw on ro export", head + "exports:\n- {name: a, dir: /srv/a, read_only: true, allow: {read_write: [x]}}\n", "exports[0].allow.read_write: the export is read_only"},
		{"bad selector", head + "exports:\n- {name: a, dir: /srv/a, allow: {read_only: [x, 'Bad Name']}}\n", "exports[0].allow.read_only[1]: \"Bad Name\""},
		{"bad tag", head + "exports:\n- {name: a, dir: /srv/a, allow: {read_only: ['tag:']}}\n", "exports[0].allow.read_only[0]: \"tag:\""},
		{"negative uid", head + "exports:\n- {name: a, dir: /srv/a, owner: {uid: -1}, allow: {read_only: ['*']}}\n", "exports[0].owner: uid and gid"},
		{"bad listen", head + "listen: nfs.mesh\n" + ok, "listen"},
		{"bad port", head + "port: 70000\n" + ok, "port"},
		{"two documents", head + ok + "---\n" + head, "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("credentials: /c\nexports:\n- {name: a, dir: /srv/a/, allow: {read_write: [b1]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !*c.Portmap {
		t.Fatal("portmap is off by default, want on")
	}
	if c.Port != DefaultPort || c.ListenAddr.IsValid() || c.Exports[0].Dir != "/srv/a" {
		t.Fatalf("Parse defaults = port %d listen %v dir %q; want 2049, unset, /srv/a", c.Port, c.Listen, c.Exports[0].Dir)
	}
}
