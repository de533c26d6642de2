package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/publish"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Forwarder installs the forward of a desired set (package forward).
type Forwarder interface {
	// Apply replaces the forward with svcs to the node's mesh address.
	Apply(ctx context.Context, mesh netip.Addr, svcs []desired.Service) error
	// Withdraw removes the whole forward.
	Withdraw(ctx context.Context) error
}

// Agent is the node's agent (package publish).
type Agent interface {
	MeshAddr(ctx context.Context) (netip.Addr, error)
	// Publish replaces dockerwatch's services on the node.
	Publish(ctx context.Context, svcs []api.Service) error
}

// Config wires a Reconciler.
type Config struct {
	Source      engine.Source
	Forward     Forwarder
	Agent       Agent
	AutoPublish bool
	// Reachable returns the IPv4 networks of the node's namespace; nil:
	// LocalPrefixes.
	Reachable func() ([]netip.Prefix, error)
	// Gateway returns the namespace's IPv4 default gateway, through which
	// containers on other networks are reached at their published host
	// ports (the zero Addr: none); nil: DefaultGateway.
	Gateway func() (netip.Addr, error)
	// Resync is the full resync interval without events; default 1 min.
	Resync time.Duration
	// Debounce is how long events are gathered before a resync; default
	// 100 ms.
	Debounce time.Duration
	// Retry is the delay before retrying a failed resync or a broken event
	// stream; default 1 s.
	Retry time.Duration
	// Republish is how often the service records are re-sent to the agent;
	// default 5 s.
	Republish time.Duration
	Log       *slog.Logger
	Metrics   *Metrics // nil: unregistered metrics
}

// Reconciler keeps the forward and the published services equal to the
// engine's running containers. Create it with New, run it with Run.
type Reconciler struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	// Owned by Run's goroutine.
	applied     []desired.Service
	appliedMesh netip.Addr
	forwardOK   bool // applied is installed
	records     []api.Service
	skips       map[string]string // container -> reason last logged
	gatewayErr  string            // the last failure to read the gateway, logged once
	failures    int               // consecutive failed resyncs
	// removedWithdrawn: the node is removed from the mesh and the forward
	// and services are withdrawn.
	removedWithdrawn bool
	onResync         func(Result) // test hook, called after each resync
}

// Result is the outcome of one resync.
type Result struct {
	Services []desired.Service
	Skips    []desired.Skip
	Err      error
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Source == nil || cfg.Forward == nil || cfg.Agent == nil {
		return nil, errors.New("reconcile: source, forward and agent are required")
	}
	if cfg.Reachable == nil {
		cfg.Reachable = LocalPrefixes
	}
	if cfg.Gateway == nil {
		cfg.Gateway = DefaultGateway
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Minute
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Republish <= 0 {
		cfg.Republish = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Reconciler{cfg: cfg, log: cfg.Log, m: cfg.Metrics, skips: map[string]string{}}, nil
}

// triggers are the container actions after which the set may differ.
var triggers = map[events.Action]bool{
	events.ActionStart: true, events.ActionRestart: true, events.ActionStop: true, events.ActionDie: true,
	events.ActionKill: true, events.ActionPause: true, events.ActionUnPause: true, events.ActionDestroy: true,
	events.ActionCreate: true, events.ActionRename: true, events.ActionUpdate: true,
	events.ActionConnect: true, events.ActionDisconnect: true, events.ActionOOM: true,
}

// Run reconciles until ctx ends, then withdraws the forward and the
// services and returns nil.
func (r *Reconciler) Run(ctx context.Context) error {
	defer r.withdraw()
	resync := time.NewTicker(r.cfg.Resync)
	defer resync.Stop()
	republish := time.NewTicker(r.cfg.Republish)
	defer republish.Stop()
	for ctx.Err() == nil {
		sctx, stop := context.WithCancel(ctx)
		msgs, errs := r.cfg.Source.Events(sctx)
		r.m.StreamUp.Set(1)
		var debounce <-chan time.Time
		retry := r.retryAfter(r.resync(ctx))
	stream:
		for {
			select {
			case <-ctx.Done():
				break stream
			case m := <-msgs:
				r.m.Events.WithLabelValues(string(m.Action)).Inc()
				if m.Type == events.ContainerEventType && triggers[m.Action] && debounce == nil {
					debounce = time.After(r.cfg.Debounce)
				}
			case err := <-errs:
				r.log.Warn("engine event stream ended; reconnecting", "err", err, "retry", r.backoff())
				break stream
			case <-debounce:
				debounce = nil
				retry = r.retryAfter(r.resync(ctx))
			case <-retry:
				retry = r.retryAfter(r.resync(ctx))
			case <-resync.C:
				retry = r.retryAfter(r.resync(ctx))
			case <-republish.C:
				if r.republish(ctx) {
					retry = r.retryAfter(r.resync(ctx))
				}
			}
		}
		stop()
		r.m.StreamUp.Set(0)
		select {
		case <-ctx.Done():
		case <-time.After(r.backoff()):
		}
	}
	return nil
}

// maxRetry caps the backoff between failed resyncs.
const maxRetry = 30 * time.Second

// retryAfter returns when to retry after a resync that returned err: nil
// after a success; after consecutive failures Retry, doubling up to
// maxRetry (an event still triggers a resync at once).
func (r *Reconciler) retryAfter(err error) <-chan time.Time {
	if err == nil {
		r.failures = 0
		return nil
	}
	d := r.backoff()
	r.failures++
	return time.After(d)
}

// backoff is Retry doubled per consecutive failure, at most maxRetry.
func (r *Reconciler) backoff() time.Duration {
	return min(r.cfg.Retry<<min(r.failures, 10), max(maxRetry, r.cfg.Retry))
}

// resync computes the desired set from the container list and applies it.
func (r *Reconciler) resync(ctx context.Context) (err error) {
	r.m.Reconciles.Inc()
	var res Result
	defer func() {
		if r.onResync != nil {
			res.Err = err
			r.onResync(res)
		}
	}()
	list, err := r.cfg.Source.List(ctx)
	if err != nil {
		return r.fail("list", err)
	}
	reach, err := r.cfg.Reachable()
	if err != nil {
		return r.fail("list", fmt.Errorf("local networks: %w", err))
	}
	gw := r.gateway()
	svcs, skips := desired.Compute(list, desired.Options{AutoPublish: r.cfg.AutoPublish, Reachable: reach, Host: gw})
	res.Services, res.Skips = svcs, skips
	r.logSkips(skips)
	r.m.Skipped.Set(float64(len(skips)))
	mesh, err := r.cfg.Agent.MeshAddr(ctx)
	if errors.Is(err, publish.ErrNodeRemoved) {
		r.withdrawRemoved(ctx)
	}
	if err != nil {
		return r.fail("agent", err)
	}
	r.removedWithdrawn = false
	if !r.forwardOK || mesh != r.appliedMesh || !slices.EqualFunc(svcs, r.applied, sameService) {
		r.forwardOK = false
		if err := r.cfg.Forward.Apply(ctx, mesh, svcs); err != nil {
			return r.fail("forward", err)
		}
		r.applied, r.appliedMesh, r.forwardOK = svcs, mesh, true
		r.m.Exposed.Set(float64(len(svcs)))
		r.log.Info("forward applied", "services", len(svcs), "mesh", mesh)
		for _, s := range svcs {
			r.log.Debug("exposed", "name", s.Name, "port", s.Port, "proto", s.Proto, "target", s.Target, "container", short(s.Container), "via", s.Via, "allow", s.Allow)
		}
	}
	recs := publish.Records(svcs)
	if err := r.cfg.Agent.Publish(ctx, recs); err != nil {
		return r.fail("publish", err)
	}
	r.records = recs
	return nil
}

// gateway returns the namespace's default gateway; when it cannot be
// read, the zero Addr (containers on other networks are then skipped,
// those on the namespace's networks are not held up), logging the failure
// once.
func (r *Reconciler) gateway() netip.Addr {
	gw, err := r.cfg.Gateway()
	if err != nil {
		if err.Error() != r.gatewayErr {
			r.log.Warn("containers on other networks not exposed", "err", err)
		}
		r.gatewayErr = err.Error()
		return netip.Addr{}
	}
	r.gatewayErr = ""
	return gw
}

// republish re-sends the records to the agent (which expires a set not
// re-sent); it reports whether the node was removed from the mesh, for the
// caller to resync (which withdraws everything).
func (r *Reconciler) republish(ctx context.Context) (removed bool) {
	if _, err := r.cfg.Agent.MeshAddr(ctx); errors.Is(err, publish.ErrNodeRemoved) {
		return !r.removedWithdrawn
	}
	if !r.forwardOK {
		return false
	}
	if err := r.cfg.Agent.Publish(ctx, r.records); err != nil {
		r.fail("publish", err)
	}
	return false
}

// withdrawRemoved withdraws the forward and the services once when the
// node is removed from the mesh; the next resync that finds the node back
// applies them again.
func (r *Reconciler) withdrawRemoved(ctx context.Context) {
	if r.removedWithdrawn {
		return
	}
	r.forwardOK, r.applied, r.records = false, nil, nil
	if err := r.cfg.Forward.Withdraw(ctx); err != nil {
		r.fail("forward", err)
		return
	}
	if err := r.cfg.Agent.Publish(ctx, nil); err != nil {
		r.fail("publish", err)
		return
	}
	r.removedWithdrawn = true
	r.m.Exposed.Set(0)
	r.log.Warn("node removed from the mesh: forward and services withdrawn")
}

func (r *Reconciler) fail(stage string, err error) error {
	r.m.ReconcileErrors.WithLabelValues(stage).Inc()
	r.log.Warn("reconcile failed", "stage", stage, "err", err)
	return fmt.Errorf("reconcile %s: %w", stage, err)
}

// logSkips logs each skipped container once per reason.
func (r *Reconciler) logSkips(skips []desired.Skip) {
	seen := make(map[string]bool, len(skips))
	for _, s := range skips {
		seen[s.Container] = true
		if r.skips[s.Container] != s.Reason {
			r.skips[s.Container] = s.Reason
			r.log.Info("container not exposed", "container", s.Container, "reason", s.Reason)
		}
	}
	for c := range r.skips {
		if !seen[c] {
			delete(r.skips, c)
		}
	}
}

// withdraw removes the forward and the services, on a fresh context since
// Run's has ended.
func (r *Reconciler) withdraw() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.cfg.Forward.Withdraw(ctx); err != nil {
		r.log.Warn("withdraw forward", "err", err)
	}
	if err := r.cfg.Agent.Publish(ctx, nil); err != nil {
		r.log.Warn("withdraw services", "err", err)
	}
	r.m.Exposed.Set(0)
	r.log.Info("withdrawn")
}

func sameService(a, b desired.Service) bool {
	return a.Name == b.Name && a.Proto == b.Proto && a.Port == b.Port && a.Target == b.Target &&
		a.Container == b.Container && slices.Equal(a.Allow, b.Allow)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// LocalPrefixes returns the IPv4 networks of this namespace's interfaces,
// loopback left out.
func LocalPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !ip.Is4() || ip.IsLoopback() {
			continue
		}
		bits, _ := n.Mask.Size()
		if len(n.Mask) == 16 {
			bits -= 96
		}
		out = append(out, netip.PrefixFrom(ip, bits).Masked())
	}
	return out, nil
}
