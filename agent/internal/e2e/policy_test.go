package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The policy lab on real namespaces, TUN devices and kernels:
// with a policy allowing only A -> B tcp/80, a scan from A of B's other
// ports and from C of every port of B gets nothing through, while A's
// request to B:80 and B's replies work; changing the policy opens and
// closes paths live.
const (
	policyOnlyAHTTP = `rules:
  - {name: ping, from: "*", to: "*", proto: icmp}
  - {name: a-http, from: n1, to: n2, proto: tcp, ports: [80]}
tests:
  - {name: only n1 reaches n2 on 80, from: n1, accept: [n2:80, n2/icmp], deny: [n2:22, n2:8080]}
  - {name: n3 reaches nothing on n2, from: n3, deny: [n2:80, n2:22, n2:8080]}
`
	policyOnlyCSSH = `rules:
  - {name: ping, from: "*", to: "*", proto: icmp}
  - {name: c-ssh, from: n3, to: n2, proto: tcp, ports: [22]}
tests:
  - {from: n3, accept: [n2:22], deny: [n2:80]}
  - {from: n1, deny: [n2:80]}
`
)

func TestPolicyLab(t *testing.T) {
	l := newLab(t)
	m := l.threeNodes("coord-p")
	cns, cfg, nss, nodes, ips := m.cns, m.cfg, m.nss, m.nodes, m.ips
	l.Start(nss["n2"], "serve", l.tool, "serve", ips["n2"], "22", "80", "8080")

	scan := func(from, ports string) string {
		t.Helper()
		out, err := l.Run(nss[from], 2*time.Minute, l.tool, "scan", ips["n2"], ports, "500ms")
		if err != nil {
			t.Fatalf("scan from %s: %v", from, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	// waitScan scans until the summary has want in it, and says how long
	// after start that took.
	waitScan := func(from, ports, want string, start time.Time) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := scan(from, ports)
			if strings.Contains(got, want) {
				t.Logf("%s -> n2 %s: %q, %v after the apply", from, ports, got, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s -> n2 %s = %q, want %q", from, ports, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	apply := func(name, doc string) (time.Time, string, error) {
		t.Helper()
		file := filepath.Join(l.Dir(), name+".yaml")
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := l.Run(cns, 30*time.Second, l.bin, "policy", "apply", "--config", cfg, "-f", file)
		return time.Now(), out, err
	}

	// Under the initial allow-all policy everything answers.
	waitScan("n3", "22,80,8080", "open=[22 80 8080]", time.Now())

	// A policy whose tests fail is refused and changes nothing.
	if _, out, err := apply("failing", policyOnlyAHTTP+"  - {from: n3, accept: [n2:80]}\n"); err == nil || !strings.Contains(out, "FAIL") {
		t.Fatalf("apply of a failing policy = %q, %v; want a refusal", out, err)
	}
	waitScan("n3", "80", "open=[80]", time.Now())

	at, out, err := apply("only-a-http", policyOnlyAHTTP)
	if err != nil {
		t.Fatalf("apply: %v: %s", err, out)
	}
	waitScan("n1", "80", "open=[80]", at)
	waitScan("n3", "80", "open=[] refused=0 filtered=1", at)
	// A scans B's first 1024 ports and 8080: only 80 answers; closed
	// ports do not even refuse (their SYNs never reach B's kernel).
	if got := scan("n1", "1-1024,8080"); !strings.Contains(got, "scanned 1025 open=[80] refused=0 filtered=1024") {
		t.Errorf("n1 scan of n2 = %q", got)
	}
	// C scans every port of B: nothing.
	if got := scan("n3", "1-65535"); !strings.Contains(got, "scanned 65535 open=[] refused=0 filtered=65535") {
		t.Errorf("n3 scan of n2 = %q", got)
	}
	// B still pings everyone, and replies to its own connections pass A's
	// filter although no rule lets B reach A.
	if err := l.ping(nss["n2"], ips["n1"], 10*time.Second); err != nil {
		t.Errorf("ping n2 -> n1 under the policy: %v", err)
	}

	// The policy changes live: C gains n2:22, A loses n2:80.
	at, out, err = apply("only-c-ssh", policyOnlyCSSH)
	if err != nil {
		t.Fatalf("apply: %v: %s", err, out)
	}
	waitScan("n3", "22,80,8080", "open=[22] refused=0 filtered=2", at)
	waitScan("n1", "22,80,8080", "open=[] refused=0 filtered=3", at)

	st, err := l.status(nodes["n2"])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("n2 status after the scans: %+v", st)
}
