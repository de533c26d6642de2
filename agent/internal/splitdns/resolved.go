package splitdns

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Runner runs a program with arguments and returns its combined output. A
// non-zero exit is an error.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

const (
	defaultResolvedDir = "/run/systemd/resolve"
	// commandTimeout bounds each resolvectl call (it talks D-Bus to resolved).
	commandTimeout = 10 * time.Second
)

func execRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func interfaceIndex(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}

// run calls r with a timeout and folds the program's output into the error.
func run(r Runner, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := r(ctx, "resolvectl", args...)
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("resolvectl %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("resolvectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// detect picks the mode for ModeAuto, with the reason in words: resolved
// when it runs (its runtime directory exists and resolvectl answers) and the
// system resolver goes through it; resolv.conf otherwise. A resolved that
// runs beside a hand-written resolv.conf (and no nss-resolve) would never see
// glibc's queries, so its per-link settings would do nothing.
func detect(opts Options) (Mode, string) {
	if st, err := os.Stat(opts.resolvedDir); err != nil || !st.IsDir() {
		return ModeResolvConf, "systemd-resolved is not running (no " + opts.resolvedDir + ")"
	}
	if err := run(opts.Runner, "status"); err != nil {
		return ModeResolvConf, "systemd-resolved does not answer: " + err.Error()
	}
	if why, ok := usesResolved(opts.ResolvConf, opts.nsswitch); ok {
		return ModeResolved, why
	}
	return ModeResolvConf, "systemd-resolved runs but " + opts.ResolvConf + " does not use its stub and nsswitch.conf has no resolve"
}

// usesResolved reports whether glibc lookups go through resolved: the
// resolv.conf is (a link to) resolved's stub file or names its stub
// listener, or nsswitch.conf's hosts line uses nss-resolve.
func usesResolved(resolvConf, nsswitch string) (string, bool) {
	if target, err := os.Readlink(resolvConf); err == nil && filepath.Base(target) == "stub-resolv.conf" {
		return resolvConf + " links to resolved's stub-resolv.conf", true
	}
	if b, err := os.ReadFile(resolvConf); err == nil {
		for _, ns := range nameservers(b) {
			if ns == "127.0.0.53" || ns == "127.0.0.54" {
				return resolvConf + " uses resolved's stub listener " + ns, true
			}
		}
	}
	if b, err := os.ReadFile(nsswitch); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 && f[0] == "hosts:" {
				for _, s := range f[1:] {
					if s == "resolve" {
						return "nsswitch.conf uses nss-resolve for hosts", true
					}
				}
			}
		}
	}
	return "", false
}

// resolved configures systemd-resolved's per-link DNS for the mesh link.
type resolved struct {
	link      string
	run       Runner
	linkIndex func(string) (int, error)
	log       *slog.Logger

	applied bool   // whether the link carries our settings
	last    Config // what was applied
	index   int    // the link's ifindex when it was applied
}

func (r *resolved) apply(cfg Config) error {
	idx, err := r.linkIndex(r.link)
	if err != nil {
		return fmt.Errorf("link %s: %w", r.link, err)
	}
	// A recreated link (new ifindex) has lost its settings: apply again.
	if r.applied && r.index == idx && r.last.equal(cfg) {
		return nil
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		servers[i] = s.String()
	}
	domains := cfg.routeDomains()
	for i, d := range domains {
		domains[i] = "~" + d
	}
	// default-route first: the link never takes other names, not even
	// between the calls below.
	steps := [][]string{
		{"default-route", r.link, "false"},
		append([]string{"domain", r.link}, domains...),
		append([]string{"dns", r.link}, servers...),
	}
	for _, s := range steps {
		if err := run(r.run, s...); err != nil {
			// Leave nothing half-configured.
			if rerr := run(r.run, "revert", r.link); rerr != nil {
				r.log.Warn("revert after failed apply", "link", r.link, "err", rerr)
			}
			r.applied = false
			return err
		}
	}
	// The mesh zone is private and unsigned, and meshdns speaks plain DNS:
	// a global DNSSEC=yes or DNSOverTLS=yes must not apply on this link.
	// Older resolvectl versions lack these verbs; that is not fatal.
	for _, s := range [][]string{{"dnssec", r.link, "no"}, {"dnsovertls", r.link, "no"}} {
		if err := run(r.run, s...); err != nil {
			r.log.Warn("optional resolved setting failed", "link", r.link, "err", err)
		}
	}
	r.applied, r.last, r.index = true, cfg, idx
	r.log.Info("mesh dns via systemd-resolved", "link", r.link, "zone", cfg.Zone, "servers", servers,
		"reverse_zones", len(domains)-1)
	return nil
}

func (r *resolved) revert() error {
	if !r.applied {
		return nil
	}
	if err := run(r.run, "revert", r.link); err != nil {
		if _, lerr := r.linkIndex(r.link); lerr == nil {
			return err
		}
		// The link is gone, and resolved forgot its settings with it.
		r.log.Debug("link gone before revert", "link", r.link)
		r.applied = false
		return nil
	}
	r.applied = false
	r.log.Info("systemd-resolved settings reverted", "link", r.link)
	return nil
}
