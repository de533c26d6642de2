package weed

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A reload asked for while weed is starting is held back until SetReady: a
// SIGHUP before weed installs its handler kills it.
func TestReloadWaitsForReady(t *testing.T) {
	dir := t.TempDir()
	hups := filepath.Join(dir, "hups")
	fake := filepath.Join(dir, "fake-weed")
	script := "#!/bin/sh\ntrap 'echo hup >> " + hups + "' HUP\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{Opts: Options{Binary: fake, Dir: filepath.Join(dir, "w"), S3Addr: netip.MustParseAddrPort("127.0.0.1:9000"), IdentitiesFile: "x"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	count := func() int {
		b, _ := os.ReadFile(hups)
		return strings.Count(string(b), "hup")
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("child started", func() bool { return s.Pid() != 0 })
	time.Sleep(200 * time.Millisecond) // the script's trap is set
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload before ready = %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := count(); n != 0 {
		t.Fatalf("SIGHUPs before SetReady = %d, want 0", n)
	}
	if err := s.SetReady(s.Pid() + 1); err != nil || s.Ready() {
		t.Fatalf("SetReady(stale pid) = %v, ready %v; want ignored", err, s.Ready())
	}
	if err := s.SetReady(s.Pid()); err != nil {
		t.Fatal(err)
	}
	waitUntil("held-back reload sent by SetReady", func() bool { return count() == 1 })
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitUntil("reload when ready", func() bool { return count() == 2 })
}
