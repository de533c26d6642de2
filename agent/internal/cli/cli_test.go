package cli

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

func TestHostnameToNodeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web-1", "web-1"},
		{"Web_1.example.com", "web-1"},
		{"--x--", "x"},
		{"", "node"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		if got := hostnameToNodeName(tt.in); got != tt.want {
			t.Errorf("hostnameToNodeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no args", nil, 2, "Usage: tunnelmesh COMMAND"},
		{"unknown", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"join without token", []string{"join", "--coordinator", "https://x:8443"}, 2, "--coordinator and one of --token, --token-file or TUNNELMESH_TOKEN are required"},
		{"join token and token file", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--token-file", "f"}, 2, "--token and --token-file exclude each other"},
		{"join token file never written", []string{"join", "--coordinator", "https://x:8443", "--token-file", "@TMP@/none", "--token-wait", "300ms", "--state-dir", "@TMP@/s"}, 1, "no such file after 300ms"},
		{"join token file empty", []string{"join", "--coordinator", "https://x:8443", "--token-file", "@TMP@", "--state-dir", "@TMP@/s"}, 1, "--token-file"},
		{"join bad mtu", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--mtu", "10"}, 1, "--mtu 10"},
		{"join bad port", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--listen-port", "70000"}, 1, "--listen-port 70000"},
		{"join bad interface", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--interface", "a/b"}, 1, "--interface"},
		{"join bad dns mode", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--dns-mode", "nscd"}, 1, "--dns-mode"},
		{"packet port not loopback", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--packet-port", "0.0.0.0:7600"}, 1, "--packet-port"},
		{"packet port without port", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--packet-port", "127.0.0.1:0"}, 1, "--packet-port"},
		{"ssh advertise alone", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--ssh-advertise", "192.0.2.1:22"}, 1, "needs --packet-port"},
		{"openssh and ssh listen", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--ssh-listen", ":2222", "--ssh-advertise", "192.0.2.1:22",
			"--ssh-openssh-host-key", "@TMP@/k.pub"}, 1, "exclude each other"},
		{"openssh without advertise", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--packet-port", "127.0.0.1:7600",
			"--ssh-openssh-host-key", "@TMP@/k.pub"}, 1, "needs --ssh-advertise"},
		{"ssh user alone", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--ssh-user", "tm"}, 1, "--ssh-user needs --ssh-openssh-host-key"},
		{"bad ssh user", []string{"join", "--coordinator", "https://x:8443", "--token", "t", "--packet-port", "127.0.0.1:7600", "--ssh-advertise", "192.0.2.1:22",
			"--ssh-openssh-host-key", "@TMP@/k.pub", "--ssh-user", "-oProxyCommand"}, 1, "--ssh-user"},
		{"up not joined", []string{"up", "--state-dir", "@TMP@"}, 1, "not joined"},
		{"status not running", []string{"status", "--state-dir", "@TMP@"}, 1, "no tunnelmesh node is running"},
		{"ping without peer", []string{"ping", "--state-dir", "@TMP@"}, 2, "which peer?"},
		{"ping not running", []string{"ping", "bravo", "--state-dir", "@TMP@"}, 1, "no tunnelmesh node is running"},
		{"extra args", []string{"version", "x"}, 2, "unexpected arguments: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			var args []string
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "@TMP@", tmp))
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), args, Env{Stdout: &out, Stderr: &errb})
			if code != tt.wantCode || !strings.Contains(errb.String()+out.String(), tt.wantErr) {
				t.Fatalf("tunnelmesh %v = %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TUNNELMESH_TOKEN stands in for --token: join gets past the token
// check (and stops at the bad --mtu).
func TestRunJoinTokenFromEnvironment(t *testing.T) {
	t.Setenv(EnvToken, "tm1.env")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"join", "--coordinator", "https://x:8443", "--mtu", "10"}, Env{Stdout: &out, Stderr: &errb})
	if code != 1 || !strings.Contains(errb.String(), "--mtu 10") {
		t.Fatalf("join with TUNNELMESH_TOKEN = %d, stderr %q; want 1 and the --mtu error", code, errb.String())
	}
}

func TestVersion(t *testing.T) {
	defer func(v string) { Version = v }(Version)
	Version = "v1.2.3-4-gabcdef0"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out bytes.Buffer
		if code := run(context.Background(), args, Env{Stdout: &out, Stderr: &out}); code != 0 || out.String() != "tunnelmesh v1.2.3-4-gabcdef0\n" {
			t.Errorf("run(%q) = %d %q, want 0 %q", args, code, out.String(), "tunnelmesh v1.2.3-4-gabcdef0\n")
		}
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := localapi.Status{
		Name: "alpha", IP: netip.MustParseAddr("100.64.0.1"), MeshID: "m1", MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
		Interface: "tunnelmesh0", MTU: 1420, ListenPort: 41641,
		Coordinator: localapi.Coordinator{URL: "https://reg:8443", Reachable: true},
		Peers: []localapi.Peer{
			{Name: "bravo", IP: netip.MustParseAddr("100.64.0.2"), Path: "direct 10.0.0.2:41641", LastHandshake: now.Add(-5 * time.Second),
				RxBytes: 2048, TxBytes: 10, RTT: 1500 * time.Microsecond, RTTP50: 410 * time.Microsecond,
				RTTP90: 900 * time.Microsecond, RTTP99: 12 * time.Millisecond, Loss: 1.0 / 64, Probes: 64},
			{Name: "charlie", IP: netip.MustParseAddr("100.64.0.3")},
			{Name: "delta", IP: netip.MustParseAddr("100.64.0.4"), Path: "relay coord", LastHandshake: now.Add(-time.Second),
				RTT: 80 * time.Millisecond, Loss: 0.25, Probes: 4},
		},
	}
	var b bytes.Buffer
	printStatus(&b, s, now)
	want := `node        alpha  100.64.0.1  (mesh m1 100.64.0.0/10)
interface   tunnelmesh0  mtu 1420  udp port 41641
coordinator https://reg:8443  reachable

PEER     IP          PATH                   HANDSHAKE  RX       TX    RTT p50/p90/p99     LOSS
bravo    100.64.0.2  direct 10.0.0.2:41641  5s ago     2.0 KiB  10 B  0.41/0.90/12.00 ms  1.6%
charlie  100.64.0.3  -                      never      0 B      0 B   -                   -
delta    100.64.0.4  relay coord            1s ago     0 B      0 B   80.00 ms            25%
`
	if b.String() != want {
		t.Fatalf("printStatus =\n%s\nwant\n%s", b.String(), want)
	}
	s.Coordinator = localapi.Coordinator{URL: "https://reg:8443", LastError: "connection refused"}
	s.Peers = nil
	b.Reset()
	printStatus(&b, s, now)
	if !strings.Contains(b.String(), "UNREACHABLE: connection refused") || !strings.Contains(b.String(), "no peers") {
		t.Fatalf("printStatus(unreachable) = %q", b.String())
	}
}

func TestWaitTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "join.token")
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(path+".tmp", []byte("  tm1.abc.def.ghi\n"), 0o600)
		os.Rename(path+".tmp", path)
	}()
	got, err := waitTokenFile(context.Background(), path, 10*time.Second)
	if err != nil || got != "tm1.abc.def.ghi" {
		t.Fatalf("waitTokenFile = %q, %v; want the trimmed token", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waitTokenFile(ctx, path+".none", time.Minute); err == nil {
		t.Fatal("waitTokenFile with a cancelled context and no file: no error")
	}
}

// The join token comes from --token, --token-file or TUNNELMESH_TOKEN;
// the file and the environment keep it out of ps.
func TestJoinToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "join.token")
	empty := filepath.Join(dir, "empty.token")
	os.WriteFile(file, []byte("tm1.file\n"), 0o600)
	os.WriteFile(empty, []byte(" \n"), 0o600)
	tests := []struct {
		name, flag, file, env string
		want, wantErr         string
	}{
		{"flag", "tm1.flag", "", "", "tm1.flag", ""},
		{"flag over environment", "tm1.flag", "", "tm1.env", "tm1.flag", ""},
		{"environment", "", "", "tm1.env", "tm1.env", ""},
		{"file", "", file, "", "tm1.file", ""},
		{"file over environment", "", file, "tm1.env", "tm1.file", ""},
		{"none", "", "", "", "", "one of --token, --token-file or TUNNELMESH_TOKEN is required"},
		{"flag and file", "tm1.flag", file, "", "", "--token and --token-file exclude each other"},
		{"missing file", "", filepath.Join(dir, "none"), "", "", "--token-file " + filepath.Join(dir, "none") + ": no such file after 300ms"},
		{"empty file", "", empty, "", "", "--token-file " + empty + ": empty after 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "TUNNELMESH_TOKEN" {
					return tt.env
				}
				return ""
			}
			got, err := joinToken(context.Background(), tt.flag, tt.file, 300*time.Millisecond, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("joinToken = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("joinToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
