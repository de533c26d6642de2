package natlab

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// BenchmarkPaths measures, between the same two namespaces (a behind an
// ordinary NAT, b reachable and accepting the SSH transport), throughput
// and RTT on each path, forcing the fallbacks with iptables in a's
// namespace: UDP with b dropped (-> SSH), then TCP to b's SSH port dropped
// too (-> relay). It prints one table, with the time to the direct path
// after the first packet and the time until each fallback carried a ping.
//
//	sudo go test ./internal/natlab/ -run XXX -bench Paths -benchtime 1x
func BenchmarkPaths(b *testing.B) {
	l := newLab(b)
	tok := l.coordinator()
	ra := l.router("ra", 11, 1, natEIM)
	nsA, _ := l.behind(ra, "a", 2)
	nsB, ipB := l.public("b", 30)
	na := l.join(nsA, "a", tok)
	nb := l.join(nsB, "b", tok, "--ssh-listen", ":2222")
	l.waitPeer(na, 30*time.Second)
	l.waitPeer(nb, 30*time.Second)

	type row struct {
		path           string
		reached        time.Duration // until a ping answered on this path
		rttMin, rttMed time.Duration
		mbits          string
	}
	var rows []row
	// wait pings until a's path has prefix want and returns how long it took.
	wait := func(want string) time.Duration {
		t0 := time.Now()
		for {
			if l.pingOnce(na.ns, nb.ip) && strings.HasPrefix(l.path(na), want) {
				return time.Since(t0)
			}
			if time.Since(t0) > 60*time.Second {
				b.Fatalf("a never got onto a %q path (now %q)", want, l.path(na))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	measure := func(reached time.Duration) {
		path := l.path(na)
		out, err := l.Run(na.ns, 60*time.Second, l.tool, "ping", nb.ip, "50")
		if err != nil {
			b.Fatalf("ping on %s: %v", path, err)
		}
		var rtts []time.Duration
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 7 && f[0] == "reply" {
				if d, err := time.ParseDuration(f[6]); err == nil {
					rtts = append(rtts, d)
				}
			}
		}
		if len(rtts) == 0 {
			b.Fatalf("no ping replies on %s: %q", path, out)
		}
		slices.Sort(rtts)
		sum := l.transfer(na, nb, 200<<20, 3*time.Minute)
		f := strings.Fields(sum)
		if p := l.path(na); p != path {
			b.Fatalf("path changed during the measurement: %q -> %q", path, p)
		}
		rows = append(rows, row{path: path, reached: reached, rttMin: rtts[0], rttMed: rtts[len(rtts)/2], mbits: f[len(f)-1]})
	}

	measure(wait("udp " + ipB + ":"))
	for _, rule := range [][]string{
		{"-A", "OUTPUT", "-p", "udp", "-d", ipB, "-j", "DROP"},
		{"-A", "INPUT", "-p", "udp", "-s", ipB, "-j", "DROP"},
	} {
		l.Must(append([]string{"ip", "netns", "exec", nsA, "iptables"}, rule...)...)
	}
	measure(wait("ssh "))
	l.Must("ip", "netns", "exec", nsA, "iptables", "-A", "OUTPUT", "-p", "tcp", "-d", ipB, "--dport", "2222", "-j", "DROP")
	measure(wait("relay "))
	b.StopTimer()

	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "path\ttime to path\trtt min\trtt median\tTCP 200 MB")
	for i, r := range rows {
		how := "after the first ping"
		if i > 0 {
			how = "after the fallback rule"
		}
		fmt.Fprintf(w, "%s\t%v (%s)\t%v\t%v\t%s\n", r.path, r.reached.Round(time.Millisecond), how,
			r.rttMin.Round(10*time.Microsecond), r.rttMed.Round(10*time.Microsecond), r.mbits)
	}
	w.Flush()
}
