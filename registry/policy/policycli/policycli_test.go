package policycli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), "tunnelmesh", args, &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodPolicy = `tags: [web, db]
rules:
  - {name: web-db, from: tag:web, to: tag:db, proto: tcp, ports: [5432]}
test_nodes:
  web1: [tag:web]
  db1: [tag:db]
tests:
  - {from: web1, accept: [db1:5432], deny: [db1:22]}
`

func TestOffline(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.yaml", goodPolicy)
	bad := write(t, dir, "bad.yaml", "rules:\n  - {from: a, to: b, proto: tcp, ports: [90-80]}\n")
	failing := write(t, dir, "failing.yaml", goodPolicy+"  - {from: web1, deny: [db1:5432]}\n")
	wider := write(t, dir, "wider.yaml", strings.Replace(goodPolicy, "[5432]", "[5432, 6432]", 1))
	nodes := write(t, dir, "nodes.json", `[
  {"name": "web1", "ip": "100.64.0.2", "tags": ["web"], "fingerprint": "SHA256:x"},
  {"name": "db1", "ip": "100.64.0.3", "tags": ["db"]},
  {"name": "web2", "ip": "100.64.0.4", "tags": ["web"]}
]`)
	example, _ := filepath.Abs("../example.yaml")
	nfsPolicy, _ := filepath.Abs("../testdata/nfs/nfs.yaml")
	nfsFailing := write(t, dir, "nfs-failing.yaml", strings.Replace(goodPolicy, "tests:", `nfs:
  exports:
    backups: {read_only: [tag:db]}
tests:
  - {name: phone cannot mount export backups, from: web1, nfs_deny: mount:backups, nfs_accept: mount:backups}`, 1))

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{"no command", nil, ExitUsage, "usage: tunnelmesh policy", ""},
		{"unknown command", []string{"frob"}, ExitUsage, "", `unknown command "frob"`},
		{"validate needs -f", []string{"validate"}, ExitUsage, "", "-f FILE is required"},
		{"validate good", []string{"validate", "-f", good}, ExitOK, "valid (2 tags, 0 groups, 1 rules, 1 tests with 2 targets)", ""},
		{"validate example", []string{"validate", "-f", example}, ExitOK, "valid", ""},
		{"validate bad", []string{"validate", "-f", bad}, ExitPolicy, "", `bad.yaml:2: rules[0].ports[0]: invalid port range "90-80"`},
		{"validate missing file", []string{"validate", "-f", filepath.Join(dir, "nope.yaml")}, ExitFailure, "", "no such file"},
		{"test good", []string{"test", "-f", good}, ExitOK, "2 passed, 0 failed", ""},
		{"test failing", []string{"test", "-f", failing}, ExitPolicy, "FAIL  tests[1]: web1 deny db1:5432 (allowed by rule web-db)", ""},
		{"test with nodes", []string{"test", "-f", good, "--nodes", nodes}, ExitOK, "PASS  tests[0]: web1 accept db1:5432 (allowed by rule web-db)", ""},
		{"validate nfs", []string{"validate", "-f", nfsPolicy}, ExitOK, "valid (2 tags, 1 groups, 0 rules, 3 tests with 7 targets)", ""},
		{"test nfs", []string{"test", "-f", nfsPolicy}, ExitOK, "PASS  build1 can write export artifacts: build1 can write export artifacts (allowed by grant nfs.exports.artifacts.read_write)", ""},
		{"test nfs deny", []string{"test", "-f", nfsPolicy}, ExitOK, "PASS  phone cannot mount export backups: phone cannot mount export backups (no grant allows it)", ""},
		{"test nfs failing", []string{"test", "-f", nfsFailing}, ExitPolicy, "FAIL  phone cannot mount export backups: web1 can mount export backups (no grant allows it)", ""},
		{"test live and nodes", []string{"test", "-f", good, "--live", "--nodes", nodes}, ExitUsage, "", "exclude each other"},
		{"diff offline", []string{"diff", "-f", wider, "--old", good}, ExitOK, "db1:\n  ~ web-db: tcp/5432 -> tcp/5432,6432\n", ""},
		{"diff offline exit code", []string{"diff", "-f", wider, "--old", good, "--exit-code"}, ExitPolicy, "~ web-db", ""},
		{"diff same", []string{"diff", "-f", good, "--old", good, "--exit-code"}, ExitOK, "no changes", ""},
		{"diff with nodes", []string{"diff", "-f", wider, "--old", good, "--nodes", nodes}, ExitOK, "db1:\n  ~ web-db: tcp/5432 -> tcp/5432,6432\n", ""},
		{"bad nodes file", []string{"test", "-f", good, "--nodes", good}, ExitFailure, "", "good.yaml"},
		{"rollback needs a number", []string{"rollback", "x"}, ExitUsage, "", `"x" is not a version number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("policy %v = %d\nstdout:\n%s\nstderr:\n%s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}
