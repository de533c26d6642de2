package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
)

func runStatus(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "status", "[--json] [--state-dir D]")
	stateDir := fs.String("state-dir", state.DefaultDir, "state directory of the node")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := localapi.NewClient(state.Dir(*stateDir).Path(state.SocketFile)).Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	printStatus(env.Stdout, s, time.Now())
	return nil
}

func printStatus(w io.Writer, s localapi.Status, now time.Time) {
	fmt.Fprintf(w, "node        %s  %s  (mesh %s %s)\n", s.Name, s.IP, s.MeshID, s.MeshCIDR)
	fmt.Fprintf(w, "interface   %s  mtu %d  udp port %d\n", s.Interface, s.MTU, s.ListenPort)
	reach := "reachable"
	if !s.Coordinator.Reachable {
		reach = "UNREACHABLE"
		if s.Coordinator.LastError != "" {
			reach += ": " + s.Coordinator.LastError
		}
	}
	fmt.Fprintf(w, "coordinator %s  %s\n", s.Coordinator.URL, reach)
	if len(s.Services) > 0 {
		svcs := make([]string, 0, len(s.Services))
		for _, sv := range s.Services {
			svcs = append(svcs, fmt.Sprintf("%s %d/%s", sv.Name, sv.Port, sv.Protocol))
		}
		fmt.Fprintf(w, "services    %s\n", strings.Join(svcs, ", "))
	}
	if len(s.Peers) == 0 {
		fmt.Fprintf(w, "\nno peers\n")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tIP\tPATH\tHANDSHAKE\tRX\tTX\tRTT p50/p90/p99\tLOSS")
	for _, p := range s.Peers {
		path := p.Path
		if path == "" {
			path = "-"
		}
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = ago(now.Sub(p.LastHandshake))
		}
		rtt, loss := "-", "-"
		switch {
		case p.RTTP50 > 0:
			rtt = fmtPercentiles(p.RTTP50, p.RTTP90, p.RTTP99)
		case p.RTT > 0:
			rtt = fmtRTT(p.RTT) // one sample (handshake or ping), no probe answered yet
		}
		if p.Probes > 0 {
			loss = fmtLoss(p.Loss)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.IP, path, hs, bytesStr(p.RxBytes), bytesStr(p.TxBytes), rtt, loss)
	}
	tw.Flush()
}

func ago(d time.Duration) string {
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
}

func fmtRTT(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// fmtPercentiles prints round trip percentiles in milliseconds, e.g.
// "0.41/0.90/1.20 ms".
func fmtPercentiles(p50, p90, p99 time.Duration) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("%.2f/%.2f/%.2f ms", ms(p50), ms(p90), ms(p99))
}

// fmtLoss prints a loss ratio as a percentage: "0%", "1.6%", "25%".
func fmtLoss(l float64) string {
	pct := l * 100
	if pct == 0 || pct >= 10 {
		return fmt.Sprintf("%.0f%%", pct)
	}
	return fmt.Sprintf("%.1f%%", pct)
}

func bytesStr(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func runPing(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "ping", "[--state-dir D] [-c N] PEER")
	stateDir := fs.String("state-dir", state.DefaultDir, "state directory of the node")
	count := fs.Int("c", 1, "number of pings")
	// Flags may come after the peer: tunnelmesh ping bravo -c 3.
	var peer string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		peer, args = args[0], args[1:]
	}
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	if peer == "" {
		peer = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintln(env.Stderr, "one peer only")
		return errUsage
	}
	if peer == "" {
		fmt.Fprintln(env.Stderr, "which peer? give a name or a mesh IP")
		fs.Usage()
		return errUsage
	}
	if *count < 1 || *count > 1000 {
		return fmt.Errorf("-c %d: must be between 1 and 1000", *count)
	}
	c := localapi.NewClient(state.Dir(*stateDir).Path(state.SocketFile))
	var lastErr error
	ok := 0
	for i := 0; i < *count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 12*time.Second)
		r, err := c.Ping(pctx, peer)
		cancel()
		if err != nil {
			fmt.Fprintf(env.Stdout, "no answer from %s: %v\n", peer, err)
			lastErr = err
			continue
		}
		ok++
		fmt.Fprintf(env.Stdout, "pong from %s (%s) via %s in %s\n", r.Peer, r.IP, r.Path, fmtRTT(r.RTT))
	}
	if ok == 0 {
		return fmt.Errorf("ping %s: %w", peer, lastErr)
	}
	return nil
}
