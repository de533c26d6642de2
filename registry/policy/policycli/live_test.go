package policycli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// startCoordinator runs a registry on loopback with two nodes, web1 (tag
// web) and db1 (tag db), and returns the registry flags for the CLI.
func startCoordinator(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := coordinator.ParseConfig([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstun_listen: \"off\"\ndata_dir: %s\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(context.Background(), cfg, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	ac := adminclient.New(c.URL(), c.AdminCredential(), c.Pin())
	hc := regclient.NewHTTPClient(c.Pin())
	t.Cleanup(func() {
		ac.HTTP.CloseIdleConnections()
		hc.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
	for _, n := range []struct{ name, tag string }{{"web1", "web"}, {"db1", "db"}} {
		tok, err := ac.CreateToken(ctx, api.CreateTokenRequest{Tags: []string{n.tag}})
		if err != nil {
			t.Fatal(err)
		}
		key, err := nodekey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := regclient.Join(ctx, hc, c.URL(), api.JoinRequest{Token: tok.Token, Name: n.name, PublicKey: key.Public()}, key); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--server", c.URL(), "--admin-token", c.AdminCredential(), "--pin", c.Pin()}
}

func TestLive(t *testing.T) {
	reg := startCoordinator(t)
	dir := t.TempDir()
	good := write(t, dir, "good.yaml", goodPolicy)
	wider := write(t, dir, "wider.yaml", strings.Replace(goodPolicy, "[5432]", "[5432, 6432]", 1))
	// Passes offline (test_nodes) but fails against the mesh, where web1
	// and db1 are real and "other" is not.
	liveFail := write(t, dir, "livefail.yaml", goodPolicy+"  - {from: db1, accept: [web1:5432]}\n")
	got := filepath.Join(dir, "got.yaml")

	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"get without policy", []string{"get"}, ExitOK, string(policy.DefaultYAML), "the built-in default policy (version 0) is in force"},
		{"versions without policy", []string{"versions"}, ExitOK, "VERSION", "no policy applied"},
		{"diff against the default", []string{"diff", "-f", good, "--exit-code"}, ExitPolicy, "db1:\n  - ping: icmp from web1\n  + web-db: tcp/5432 from web1\nweb1:\n  - ping: icmp from db1\n", ""},
		{"test live", []string{"test", "-f", good, "--live"}, ExitOK, "2 passed, 0 failed", ""},
		{"apply failing tests", []string{"apply", "-f", liveFail}, ExitPolicy, "FAIL", "tests failed; nothing was applied"},
		{"apply", []string{"apply", "-f", good}, ExitOK, "applied: version 1 (2 test targets passed)", ""},
		{"apply again", []string{"apply", "-f", good}, ExitOK, "unchanged", ""},
		{"diff no change", []string{"diff", "-f", good, "--exit-code"}, ExitOK, "no changes", ""},
		{"diff wider", []string{"diff", "-f", wider}, ExitOK, "~ web-db: tcp/5432 -> tcp/5432,6432", ""},
		{"apply stale base", []string{"apply", "-f", wider, "--if-version", "7"}, ExitPolicy, "", "409 conflict"},
		{"apply wider", []string{"apply", "-f", wider, "--if-version", "1"}, ExitOK, "applied: version 2", ""},
		{"versions", []string{"versions"}, ExitOK, "VERSION", ""},
		{"rollback", []string{"rollback", "1"}, ExitOK, "rolled back: version 1 is current again as version 3", ""},
		{"get", []string{"get"}, ExitOK, goodPolicy, ""},
		{"get old to file", []string{"get", "--version", "2", "-o", got}, ExitOK, "", "policy version 2 written to"},
		{"get unknown version", []string{"get", "--version", "99"}, ExitFailure, "", "no such policy version"},
	}
	for _, s := range steps {
		code, out, errOut := run(t, append(s.args, reg...)...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) || !strings.Contains(errOut, s.wantErr) {
			t.Fatalf("step %q: policy %v = %d\nstdout:\n%s\nstderr:\n%s\nwant %d, stdout containing %q, stderr containing %q",
				s.name, s.args, code, out, errOut, s.wantCode, s.wantOut, s.wantErr)
		}
	}
	// Later flags win: a wrong credential is a 401, an operational error.
	if code, _, errOut := run(t, append(append([]string{"get"}, reg...), "--admin-token", "nope")...); code != ExitFailure || !strings.Contains(errOut, "401") {
		t.Fatalf("get with a bad credential = %d, %s", code, errOut)
	}
	// The credential from a file, so that it does not show in ps.
	credFile := write(t, dir, "admin.token", reg[3]+"\n")
	fileReg := []string{reg[0], reg[1], "--admin-token-file", credFile, reg[4], reg[5]}
	if code, out, errOut := run(t, append([]string{"versions"}, fileReg...)...); code != ExitOK || !strings.Contains(out, "VERSION") {
		t.Fatalf("versions with --admin-token-file = %d, %s %s", code, out, errOut)
	}
	fileReg[3] = write(t, dir, "empty.token", "")
	if code, _, errOut := run(t, append([]string{"versions"}, fileReg...)...); code != ExitFailure || !strings.Contains(errOut, "--admin-token-file "+fileReg[3]+": empty file") {
		t.Fatalf("versions with an empty --admin-token-file = %d, %s", code, errOut)
	}
	code, out, _ := run(t, "validate", "-f", got)
	if code != ExitOK || !strings.Contains(out, "valid") {
		t.Fatalf("the fetched version does not validate: %d %s", code, out)
	}
}
