package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/enginetest"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/publish"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	recordedNet = netip.MustParsePrefix("192.168.192.0/20")
	mesh        = netip.MustParseAddr("100.64.0.7")
)

// fakeForward holds the forward as a kernel table would: each Apply
// replaces it whole.
type fakeForward struct {
	mu      sync.Mutex
	table   []desired.Service
	mesh    netip.Addr
	applies int
	failN   int // fail the next failN applies
}

func (f *fakeForward) Apply(ctx context.Context, m netip.Addr, svcs []desired.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN > 0 {
		f.failN--
		return errors.New("nft -f: injected failure")
	}
	f.table, f.mesh = slices.Clone(svcs), m
	f.applies++
	return nil
}

func (f *fakeForward) Withdraw(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table = nil
	return nil
}

func (f *fakeForward) get() []desired.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.table)
}

func (f *fakeForward) state() (netip.Addr, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mesh, f.applies
}

// fakeAgent holds the services as the agent does.
type fakeAgent struct {
	mu      sync.Mutex
	svcs    []api.Service
	down    bool
	removed bool
}

func (a *fakeAgent) MeshAddr(ctx context.Context) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return netip.Addr{}, errors.New("local api: connection refused")
	}
	if a.removed {
		return netip.Addr{}, fmt.Errorf("agent status: %w", publish.ErrNodeRemoved)
	}
	return mesh, nil
}

func (a *fakeAgent) setRemoved(removed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removed = removed
}

func (a *fakeAgent) Publish(ctx context.Context, svcs []api.Service) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errors.New("local api: connection refused")
	}
	a.svcs = slices.Clone(svcs)
	return nil
}

func (a *fakeAgent) get() []api.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.svcs)
}

func (a *fakeAgent) set(svcs []api.Service, down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.svcs, a.down = svcs, down
}

func load(t *testing.T) enginetest.Recording {
	rec, err := enginetest.Load(filepath.Join("..", "enginetest", "testdata", "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

type harness struct {
	replay *enginetest.Replay
	fwd    *fakeForward
	agent  *fakeAgent
	m      *Metrics
	// gateway, when set, replaces "no default gateway".
	gateway func() (netip.Addr, error)
}

// start runs a reconciler on h until the test ends.
func (h *harness) start(t *testing.T) (stop func()) {
	t.Helper()
	gw := h.gateway
	if gw == nil {
		gw = func() (netip.Addr, error) { return netip.Addr{}, nil }
	}
	r, err := New(Config{
		Source: h.replay, Forward: h.fwd, Agent: h.agent,
		Reachable: func() ([]netip.Prefix, error) { return []netip.Prefix{recordedNet}, nil },
		Gateway:   gw,
		Debounce:  20 * time.Millisecond, Retry: 50 * time.Millisecond, Republish: 100 * time.Millisecond,
		Resync: time.Hour, Metrics: h.m,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newHarness(initial []container.Summary) *harness {
	return &harness{replay: enginetest.NewReplay(initial), fwd: &fakeForward{}, agent: &fakeAgent{}, m: NewMetrics(nil)}
}

// want is what a fresh resync of list yields.
func want(list []container.Summary) ([]desired.Service, []api.Service) {
	svcs, _ := desired.Compute(list, desired.Options{Reachable: []netip.Prefix{recordedNet}})
	return svcs, publish.Records(svcs)
}

// waitState waits (generously) until the forward and the agent hold what a
// fresh resync of list yields.
func (h *harness) waitState(t *testing.T, what string, list []container.Summary) {
	t.Helper()
	wf, wa := want(list)
	deadline := time.Now().Add(20 * time.Second)
	for {
		gf, ga := h.fwd.get(), h.agent.get()
		m, _ := h.fwd.state()
		if slices.EqualFunc(gf, wf, sameService) && slices.Equal(ga, wa) && (len(wf) == 0 || m == mesh) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: forward %v, agent %v; want %v, %v", what, gf, ga, wf, wa)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) waitStream(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.replay.Streams() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reconciler never opened the event stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecordedStream replays the recorded engine stream: after each step's
// events the forward and the agent's services equal a fresh resync of the
// list, and the forward is rewritten only when the set changes.
func TestRecordedStream(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Initial)
	h.start(t)
	h.waitStream(t)
	h.waitState(t, "initial", rec.Initial)
	var prev []desired.Service
	for i, st := range rec.Steps {
		_, before := h.fwd.state()
		h.replay.Play(st)
		h.waitState(t, fmt.Sprintf("step %d (%s)", i, st.Action), st.List)
		cur, _ := want(st.List)
		time.Sleep(50 * time.Millisecond) // a later rewrite would show up in the count
		if _, after := h.fwd.state(); slices.EqualFunc(cur, prev, sameService) && after != before {
			t.Errorf("step %d (%s): forward rewritten %d times though the set did not change", i, st.Action, after-before)
		}
		prev = cur
	}
	// The recording exposes web and later site; both were seen.
	if n := testutil.ToFloat64(h.m.Events.WithLabelValues("start")); n < 5 {
		t.Errorf("events_total{action=start} = %v, want the recording's 5 starts", n)
	}
}

// TestGatewayUnreadable: a default gateway that cannot be read holds up
// no container on the namespace's networks, and counts no failed resync.
func TestGatewayUnreadable(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Initial)
	h.gateway = func() (netip.Addr, error) {
		return netip.Addr{}, errors.New("default gateway: /proc/net/route: permission denied")
	}
	h.start(t)
	h.waitStream(t)
	h.waitState(t, "initial", rec.Initial)
	st := rec.Steps[0]
	if wf, _ := want(st.List); len(wf) == 0 {
		t.Fatal("the recording's first step exposes nothing: the test checks nothing")
	}
	h.replay.Play(st)
	h.waitState(t, "step 0 ("+string(st.Action)+")", st.List)
	if n := testutil.ToFloat64(h.m.ReconcileErrors.WithLabelValues("list")); n != 0 {
		t.Errorf("reconcile_errors_total{stage=list} = %v, want 0", n)
	}
}

// TestRestartResync: dockerwatch killed (nothing withdrawn) while
// containers come and go, then started again: the result equals a fresh
// resync, with nothing stale and nothing twice.
func TestRestartResync(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Initial)
	stop := h.start(t)
	h.waitStream(t)
	for _, st := range rec.Steps[:4] {
		h.replay.Play(st)
	}
	h.waitState(t, "after step 3", rec.Steps[3].List)
	stop() // a clean stop withdraws everything
	if f, a := h.fwd.get(), h.agent.get(); len(f) != 0 || len(a) != 0 {
		t.Fatalf("after a clean stop: forward %v, agent %v; want both empty", f, a)
	}

	// A kill leaves the last state behind; containers change meanwhile.
	stale, staleRecs := want(rec.Steps[3].List)
	h.fwd.table, h.fwd.mesh = stale, mesh
	h.agent.set(staleRecs, false)
	h.replay.SetList(rec.Steps[10].List) // web recreated as "site", pub dead
	h.start(t)
	h.waitState(t, "restart after kill", rec.Steps[10].List)
	for _, s := range h.fwd.get() {
		if s.Name == "dwrec-web" {
			t.Errorf("stale service %v survived the restart", s)
		}
	}
}

// TestDaemonRestart: the daemon goes away (the stream breaks, calls fail)
// and comes back with other containers and no events for them: the
// reconciler reconnects and resyncs.
func TestDaemonRestart(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Initial)
	h.start(t)
	h.waitStream(t)
	h.replay.Play(rec.Steps[0])
	h.waitState(t, "web running", rec.Steps[0].List)
	opened := h.replay.Opened()
	h.replay.Down()
	time.Sleep(200 * time.Millisecond) // a few failed reconnects
	h.replay.SetList(rec.Steps[10].List)
	h.replay.Up()
	h.waitState(t, "after the daemon restart", rec.Steps[10].List)
	if h.replay.Opened() <= opened {
		t.Errorf("event stream opened %d times, want a reconnect after %d", h.replay.Opened(), opened)
	}
	// Events flow again on the new stream.
	h.waitStream(t)
	h.replay.Play(rec.Steps[12])
	h.waitState(t, "web removed after the reconnect", rec.Steps[12].List)
}

// TestAgentRestart: an agent that restarts forgets dockerwatch's services;
// they are re-sent within the republish interval. While it is down the
// resync fails and is retried.
func TestAgentRestart(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Steps[0].List)
	h.start(t)
	h.waitState(t, "web running", rec.Steps[0].List)
	h.agent.set(nil, true)
	h.waitStream(t)
	h.replay.Play(rec.Steps[10]) // resync while the agent is down fails
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(h.m.ReconcileErrors.WithLabelValues("agent")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no agent error counted while the agent was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.agent.set(nil, false) // back, with no services
	h.waitState(t, "after the agent restart", rec.Steps[10].List)
}

// TestForwardFailureRetried: an apply that fails is counted and retried.
func TestForwardFailureRetried(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Steps[0].List)
	h.fwd.failN = 2
	h.start(t)
	h.waitState(t, "web running after two failed applies", rec.Steps[0].List)
	if n := testutil.ToFloat64(h.m.ReconcileErrors.WithLabelValues("forward")); n != 2 {
		t.Errorf("reconcile_errors_total{stage=forward} = %v, want 2", n)
	}
	if n := testutil.ToFloat64(h.m.Exposed); n != 2 {
		t.Errorf("services_exposed = %v, want 2 (web 8080/tcp, 5353/udp)", n)
	}
}

// TestNodeRemoved: when the agent reports the node removed from the mesh,
// the forward and the services are withdrawn without any container event
// (at the next re-send), and applied again once the node is back.
func TestNodeRemoved(t *testing.T) {
	rec := load(t)
	h := newHarness(rec.Steps[0].List)
	h.start(t)
	h.waitState(t, "web running", rec.Steps[0].List)
	h.agent.setRemoved(true)
	deadline := time.Now().Add(20 * time.Second)
	for len(h.fwd.get()) != 0 || len(h.agent.get()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node removed: forward %v, agent %v; want both empty", h.fwd.get(), h.agent.get())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(h.m.Exposed); n != 0 {
		t.Errorf("services_exposed = %v after removal, want 0", n)
	}
	h.agent.setRemoved(false)
	h.waitState(t, "the node back", rec.Steps[0].List)
}
