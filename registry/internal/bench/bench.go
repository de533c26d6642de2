// Package bench measures the registry in-process over real TLS on loopback
// and prints a table:
//
//   - joins per second (and join latency) for Options.Nodes nodes joining
//     with Options.Concurrency parallel clients;
//   - netmap fan-out: every node keeps a long-poll watch open (its own HTTP
//     client and TLS connection, configured as package regclient configures
//     real nodes); one node reports new endpoints, and the latency from that
//     call to each watcher holding the new netmap is recorded, over
//     Options.Rounds rounds. "last watcher" is the latency until the last of
//     all watchers knows the change, one sample per round.
//
// Netmaps travel gzip-compressed, as Go clients ask for (small deltas
// uncompressed). Watchers ask for
// deltas on the netmap they hold, as package regclient does (see
// api.NetmapDelta): after the first, whole, netmap each change reaches them
// as the changed peers only; Options.Whole makes them ask for whole netmaps
// every time, as clients without deltas do. By default watchers read the
// whole compressed answer but decompress and decode only its version;
// Options.Decode decompresses and decodes it fully and applies deltas
// (api.ApplyDelta), which on a small machine measures the watchers' CPU as
// much as the registry's.
//
// Round r's change is made by node r%Nodes, so that no node exceeds the
// registry's per-node limit on endpoint changes; the registry runs with its
// per-source connection cap raised to fit every client on 127.0.0.1. The
// output's second line says both.
//
// cmd/registry-bench and BenchmarkRegistry (go test -bench) run it;
// TestSmokeTable runs it small in the registry's tests.
package bench

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/config"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/server"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Options size the experiment.
type Options struct {
	Nodes       int    // nodes that join; each one watches the netmap
	Concurrency int    // parallel joins
	Rounds      int    // netmap changes measured
	Decode      bool   // watchers decode the full netmap JSON
	Whole       bool   // watchers ask for whole netmaps, not deltas
	CPUProfile  string // file for a CPU profile of the fan-out rounds
	// BlockProfile and MutexProfile, when set, are files for the blocking
	// and mutex contention profiles of the fan-out rounds (where
	// goroutines wait rather than run).
	BlockProfile, MutexProfile string
	// PostgresDSN, when set, runs the registry on that PostgreSQL
	// database (store: postgres; it must be empty) instead of SQLite.
	PostgresDSN string
	// Replicas is the number of registry replicas on PostgresDSN (1 when
	// 0); node i joins and watches through replica i%Replicas, and each
	// round's change is made through the changing node's replica, so the
	// fan-out crosses replicas.
	Replicas int
	// Stages prints, after the table, when each round's change reached
	// each stage (see stages).
	Stages bool
	// StallDump, when set, is the prefix of files that get every
	// goroutine's stack once a round has waited StallAfter (3s when 0).
	StallDump  string
	StallAfter time.Duration
	// Logs receives the replicas' warnings and errors; none when nil.
	Logs io.Writer
}

// Result holds the measured numbers.
type Result struct {
	JoinsPerSecond   float64
	JoinP50, JoinP99 time.Duration
	FanoutP50        time.Duration // change to one watcher knowing it
	FanoutP99        time.Duration
	LastP50, LastP99 time.Duration // change to the last watcher knowing it
	NetmapBytes      int           // the first (whole) netmap, gzip
	AnswerBytes      int           // the last answer (a delta unless Whole), gzip
	Deltas, Wholes   int           // netmap answers by kind, in the fan-out rounds
	// CPUPerChange is the process's CPU time (user and system: registry
	// and watchers) during the fan-out rounds, per round.
	CPUPerChange time.Duration
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type node struct {
	key  nodekey.PrivateKey
	cred nodeauth.Credential
	hc   *http.Client
	buf  bytes.Buffer // reused for netmap bodies
	base string       // api.NetmapBaseHeader of the last answer
	held *api.Netmap  // with Decode: the netmap held
	zr   gzip.Reader  // reused for gzip answers
}

// Run runs the experiment and prints its table to w.
func Run(o Options, w io.Writer) (*Result, error) {
	n, conc, rounds, decode := o.Nodes, o.Concurrency, o.Rounds, o.Decode
	if n < 2 || conc < 1 || rounds < 1 {
		return nil, fmt.Errorf("bench: want at least 2 nodes, 1 join client and 1 round")
	}
	// Round r's change is made by node r%n, so each node stays within the
	// registry's per-node limit on endpoint changes (a burst of
	// server.EndpointChangeBurst, refilled slowly).
	if perNode := (rounds + n - 1) / n; perNode > server.EndpointChangeBurst {
		return nil, fmt.Errorf("bench: %d rounds over %d nodes is %d endpoint changes per node; the registry allows a burst of %d: use more nodes or fewer rounds",
			rounds, n, perNode, server.EndpointChangeBurst)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "registry-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Every client runs here, on one address: the per-source connection
	// cap is raised to fit them (the output says so).
	maxConns := max(config.DefaultMaxConnsPerSource, n+conc+16)
	replicas := max(o.Replicas, 1)
	if replicas > 1 && o.PostgresDSN == "" {
		return nil, fmt.Errorf("bench: %d replicas need a PostgreSQL database", replicas)
	}
	storeCfg, storeName := "", "sqlite"
	if o.PostgresDSN != "" {
		storeCfg = fmt.Sprintf("store: postgres\npostgres_dsn: %q\n", o.PostgresDSN)
		storeName = fmt.Sprintf("postgres, %d replica(s)", replicas)
	}
	coords := make([]*coordinator.Coordinator, replicas)
	bases := make([]string, replicas)
	var runWG sync.WaitGroup
	defer func() { cancel(); runWG.Wait() }()
	for r := range coords {
		rdir := filepath.Join(dir, strconv.Itoa(r))
		rcfg := storeCfg
		if rcfg != "" {
			rcfg += fmt.Sprintf("relay: {id: bench-%d}\n", r) // one per replica
		}
		cfg, err := coordinator.ParseConfig([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstun_listen: \"off\"\nonline_timeout: 1h\nmax_conns_per_source: %d\ndata_dir: %s\n%s", maxConns, rdir, rcfg)))
		if err != nil {
			return nil, err
		}
		logger := slog.New(slog.DiscardHandler)
		if o.Logs != nil {
			logger = slog.New(slog.NewTextHandler(o.Logs, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", r)
		}
		c, err := coordinator.New(ctx, cfg, coordinator.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		coords[r], bases[r] = c, c.URL()
		runWG.Add(1)
		go func() { defer runWG.Done(); c.Run(ctx) }()
	}
	c := coords[0]
	base := bases[0]
	// version is the newest netmap version of any replica.
	version := func() uint64 {
		var v uint64
		for _, c := range coords {
			v = max(v, c.NetmapVersion())
		}
		return v
	}

	// A reusable token through the admin API.
	admin := regclient.NewHTTPClient(c.Pin())
	tokBody, _ := json.Marshal(api.CreateTokenRequest{Reusable: true})
	req, _ := http.NewRequest("POST", base+api.PathAdminTokens, bytes.NewReader(tokBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.AdminCredential())
	resp, err := admin.Do(req)
	if err != nil {
		return nil, err
	}
	var tok api.CreateTokenResponse
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}

	// Phase 1: joins.
	keys := make([]nodekey.PrivateKey, n)
	for i := range keys {
		if keys[i], err = nodekey.Generate(); err != nil {
			return nil, err
		}
	}
	joinHC := regclient.NewHTTPClient(c.Pin())
	joinHC.Transport.(*http.Transport).MaxIdleConnsPerHost = conc
	nodes := make([]*node, n)
	joinLat := make([]time.Duration, n)
	var next atomic.Int64
	var joinErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				r, err := regclient.Join(ctx, joinHC, bases[i%replicas], api.JoinRequest{Token: tok.Token, Name: "bench-" + strconv.Itoa(i), PublicKey: keys[i].Public()}, keys[i])
				joinLat[i] = time.Since(t0)
				if err != nil {
					joinErr.Store(err)
					return
				}
				cred, _ := nodeauth.ParseCredential(r.Credential)
				nodes[i] = &node{key: keys[i], cred: cred, hc: regclient.NewHTTPClient(c.Pin())}
			}
		}()
	}
	wg.Wait()
	joinDur := time.Since(start)
	if e := joinErr.Load(); e != nil {
		return nil, fmt.Errorf("join: %v", e)
	}
	joinHC.CloseIdleConnections()

	// Phase 2: fan-out.
	type seen struct {
		mu    sync.Mutex
		first map[uint64]time.Time
	}
	watch := make([]*seen, n)
	var bodyBytes, firstBytes atomic.Int64
	var measuring atomic.Bool
	var deltas, wholes atomic.Int64
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wwg sync.WaitGroup
	// Watchers connect (TLS handshake and first, whole netmap) at most
	// connectAtOnce at a time, and back off after a failed poll as
	// regclient.Watch does: thousands of handshakes at once on a loaded
	// machine time out and retry for ever. Connecting is not measured.
	const connectAtOnce = 64
	connecting := make(chan struct{}, connectAtOnce)
	for i, nd := range nodes {
		watch[i] = &seen{first: map[uint64]time.Time{}}
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			var since uint64
			backoff := 100 * time.Millisecond
			for wctx.Err() == nil {
				if since == 0 {
					connecting <- struct{}{}
				}
				v, size, delta, err := poll(wctx, bases[i%replicas], nd, since, decode, !o.Whole)
				if since == 0 {
					<-connecting
				}
				if err != nil {
					if wctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "watch:", err)
						time.Sleep(backoff)
						backoff = min(2*backoff, 5*time.Second)
					}
					continue
				}
				backoff = 100 * time.Millisecond
				if v == 0 {
					continue // 304
				}
				now := time.Now()
				watch[i].mu.Lock()
				if _, ok := watch[i].first[v]; !ok {
					watch[i].first[v] = now
				}
				watch[i].mu.Unlock()
				if since == 0 {
					firstBytes.Store(int64(size))
				}
				bodyBytes.Store(int64(size))
				if measuring.Load() {
					if delta {
						deltas.Add(1)
					} else {
						wholes.Add(1)
					}
				}
				since = v
			}
		}()
	}
	// Wait until every watcher holds the current version and is waiting.
	if err := waitAll(func(i int) bool {
		watch[i].mu.Lock()
		defer watch[i].mu.Unlock()
		_, ok := watch[i].first[version()]
		return ok
	}, n, 10*time.Minute); err != nil {
		return nil, fmt.Errorf("initial netmaps: %w", err)
	}
	time.Sleep(500 * time.Millisecond)

	mutHC := regclient.NewHTTPClient(c.Pin())
	defer mutHC.CloseIdleConnections()
	var all, last []time.Duration
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	stopWaits, err := startWaitProfiles(o.BlockProfile, o.MutexProfile)
	if err != nil {
		return nil, err
	}
	var st *stages
	if o.Stages || o.StallDump != "" {
		st = newStages(replicas, func(r int) uint64 { return coords[r].NetmapVersion() }, o.StallDump, cmp.Or(o.StallAfter, 3*time.Second))
		sctx, scancel := context.WithCancel(ctx)
		var swg sync.WaitGroup
		defer func() { scancel(); swg.Wait() }()
		if o.PostgresDSN != "" {
			ready := make(chan error, 1)
			swg.Add(1)
			go func() { defer swg.Done(); st.listen(sctx, o.PostgresDSN, ready) }()
			if err := <-ready; err != nil {
				return nil, err
			}
		}
		swg.Add(1)
		go func() { defer swg.Done(); st.sample(sctx) }()
	}
	measuring.Store(true)
	cpu0 := cpuTime()
	var roundsWall time.Duration
	for r := range rounds {
		before := version()
		via := (r % n) % replicas
		var rs *roundStages
		endRound := func() {}
		if st != nil {
			rs, endRound = st.start(r, via)
		}
		t0 := time.Now()
		ep := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(10000+r))
		nd := nodes[r%n]
		// A loaded machine may take longer than the default attempt timeout.
		mutator := &regclient.Client{BaseURL: bases[via], HTTP: mutHC, Credential: nd.cred, Key: nd.key, AttemptTimeout: 2 * time.Minute}
		if err := mutator.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{ep}}); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		target := before + 1
		if rs != nil {
			rs.t0, rs.answered, rs.version = t0, time.Now(), target
			rs.first, rs.last = make([]time.Time, replicas), make([]time.Time, replicas)
		}
		if err := waitAll(func(i int) bool {
			watch[i].mu.Lock()
			defer watch[i].mu.Unlock()
			_, ok := watch[i].first[target]
			return ok
		}, n, 60*time.Second); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		var worst time.Duration
		for i := range n {
			watch[i].mu.Lock()
			at := watch[i].first[target]
			watch[i].mu.Unlock()
			d := at.Sub(t0)
			all = append(all, d)
			worst = max(worst, d)
			if rs != nil {
				if f := &rs.first[i%replicas]; f.IsZero() || at.Before(*f) {
					*f = at
				}
				if l := &rs.last[i%replicas]; at.After(*l) {
					*l = at
				}
			}
		}
		last = append(last, worst)
		roundsWall += time.Since(t0)
		endRound()
		time.Sleep(200 * time.Millisecond)
	}
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err := stopWaits(); err != nil {
		return nil, err
	}
	measuring.Store(false)
	cpu := cpuTime() - cpu0
	wcancel()
	wwg.Wait()

	slices.Sort(joinLat)
	slices.Sort(all)
	slices.Sort(last)
	mode := "the version only"
	if decode {
		mode = "all (gunzip + JSON)"
	}
	res := &Result{
		JoinsPerSecond: float64(n) / joinDur.Seconds(),
		JoinP50:        pctDur(joinLat, 50), JoinP99: pctDur(joinLat, 99),
		FanoutP50: pctDur(all, 50), FanoutP99: pctDur(all, 99),
		LastP50: pctDur(last, 50), LastP99: pctDur(last, 99),
		NetmapBytes: int(firstBytes.Load()), AnswerBytes: int(bodyBytes.Load()),
		Deltas: int(deltas.Load()), Wholes: int(wholes.Load()),
		CPUPerChange: cpu / time.Duration(rounds),
	}
	kind := "deltas"
	if o.Whole {
		kind = "whole netmaps"
	}
	fmt.Fprintf(w, "registry-bench: %d nodes, %d join clients, %d fan-out rounds, GOMAXPROCS=%d, netmap %d bytes gzip, watchers ask for %s (answers: %d deltas, the last %d bytes, %d whole), watchers decode %s, store %s\n",
		n, conc, rounds, runtime.GOMAXPROCS(0), res.NetmapBytes, kind, res.Deltas, res.AnswerBytes, res.Wholes, mode, storeName)
	fmt.Fprintf(w, "registry-bench: CPU of this process (registry and watchers) per change %s, %.0f µs per watcher; CPU time over fan-out time %.2f on %d CPUs (re-polls after a round count too, so it can exceed them)\n",
		res.CPUPerChange.Round(time.Millisecond), float64(res.CPUPerChange.Microseconds())/float64(n), cpu.Seconds()/roundsWall.Seconds(), runtime.NumCPU())
	fmt.Fprintf(w, "registry config: max_conns_per_source %d (default %d; all clients share 127.0.0.1); each round's change by another node (per-node endpoint change limit: burst %d, %d/min)\n\n",
		maxConns, config.DefaultMaxConnsPerSource, server.EndpointChangeBurst, server.EndpointChangesPerMinute)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tvalue\tp50\tp99\tmax\t")
	fmt.Fprintf(tw, "joins/s\t%.0f\t\t\t\t\n", float64(n)/joinDur.Seconds())
	fmt.Fprintf(tw, "join latency\t\t%s\t%s\t%s\t\n", pct(joinLat, 50), pct(joinLat, 99), pct(joinLat, 100))
	fmt.Fprintf(tw, "fan-out, each watcher\t\t%s\t%s\t%s\t\n", pct(all, 50), pct(all, 99), pct(all, 100))
	fmt.Fprintf(tw, "fan-out, last of %d watchers\t\t%s\t%s\t%s\t\n", n, pct(last, 50), pct(last, 99), pct(last, 100))
	if err := tw.Flush(); err != nil || !o.Stages {
		return res, err
	}
	fmt.Fprintf(w, "\nstages of each round, in ms after the change call was made (at: the round's start in seconds since the process started; answered: the call; notified: its NOTIFY delivered; pub r: replica r published it; first/last r: replica r's first and last watcher held it):\n")
	return res, st.print(w)
}

// startWaitProfiles starts recording blocking events (every one) and mutex
// contention (every one) when their files are named; the returned function
// writes the profiles and stops recording.
func startWaitProfiles(blockFile, mutexFile string) (func() error, error) {
	if blockFile != "" {
		runtime.SetBlockProfileRate(1)
	}
	if mutexFile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	write := func(name, file string) error {
		f, err := os.Create(file)
		if err != nil {
			return fmt.Errorf("write %s profile: %w", name, err)
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			f.Close()
			return fmt.Errorf("write %s profile: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s profile: %w", name, err)
		}
		return nil
	}
	return func() error {
		var err error
		if blockFile != "" {
			runtime.SetBlockProfileRate(0)
			err = write("block", blockFile)
		}
		if mutexFile != "" {
			runtime.SetMutexProfileFraction(0)
			if e := write("mutex", mutexFile); err == nil {
				err = e
			}
		}
		return err
	}, nil
}

// poll does one netmap long-poll, asking for a delta on the netmap held
// when deltas is set; it returns version 0 for 304, the answer's size and
// whether it was a delta.
func poll(ctx context.Context, base string, nd *node, since uint64, decode, deltas bool) (uint64, int, bool, error) {
	uri := api.PathNetmap + "?since=" + strconv.FormatUint(since, 10) + "&wait=30s"
	if deltas && since != 0 && nd.base != "" {
		uri += "&" + api.NetmapDeltaParam + "=" + url.QueryEscape(nd.base)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+uri, nil)
	if err != nil {
		return 0, 0, false, err
	}
	// Asking for gzip ourselves keeps the transport from decompressing.
	req.Header.Set("Accept-Encoding", "gzip")
	nodeauth.Sign(req, nil, nd.cred, nd.key, time.Now())
	resp, err := nd.hc.Do(req)
	if err != nil {
		return 0, 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return 0, 0, false, nil
	}
	nd.buf.Reset()
	if _, err := nd.buf.ReadFrom(resp.Body); err != nil {
		return 0, 0, false, err
	}
	b := nd.buf.Bytes()
	if resp.StatusCode != 200 {
		return 0, 0, false, fmt.Errorf("netmap: %d %s", resp.StatusCode, b)
	}
	nd.base = resp.Header.Get(api.NetmapBaseHeader)
	// The body is gzip (see the registry's netmap encoding; small deltas
	// go uncompressed): the transfer is complete here; decompress what is
	// needed.
	var zr io.Reader = bytes.NewReader(b)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if err := nd.zr.Reset(zr); err != nil {
			return 0, 0, false, fmt.Errorf("netmap: %w", err)
		}
		zr = &nd.zr
	}
	if decode {
		var d api.NetmapDelta
		if err := json.NewDecoder(zr).Decode(&d); err != nil {
			return 0, 0, false, err
		}
		nm, err := api.ApplyDelta(nd.held, &d)
		if err != nil {
			return 0, 0, false, err
		}
		nd.held = nm
		return nm.Version, len(b), d.DeltaFrom != 0, nil
	}
	// The document starts {"version":N, and a delta goes on with
	// "delta_from": (see the registry's renderer).
	var start [64]byte
	m, _ := io.ReadFull(zr, start[:])
	const prefix = `{"version":`
	if !bytes.HasPrefix(start[:m], []byte(prefix)) {
		return 0, 0, false, fmt.Errorf("netmap: unexpected start %.20q", start[:m])
	}
	rest := start[len(prefix):m]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, 0, false, fmt.Errorf("netmap: no version")
	}
	v, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return v, len(b), bytes.HasPrefix(rest[end+1:], []byte(`"delta_from":`)), err
}

func waitAll(done func(i int) bool, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i := 0; i < n; {
		if done(i) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("watcher %d did not get the netmap within %s", i, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func pctDur(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	i = min(max(i-1, 0), len(d)-1)
	return d[i]
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	return pctDur(d, p).Round(100 * time.Microsecond).String()
}
