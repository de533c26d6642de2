package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/postgres"
)

// stages records when each round's change reached each stage: the change
// call answered (the change committed and the changing replica's snapshot
// rebuilt), its NOTIFY delivered (to a listener of the bench's own on the
// same channel, as the replicas listen), each replica publishing the
// version, and each replica's first and last watcher holding it; and the
// garbage collections during the round. With a dump file it also writes
// every goroutine's stack (debug=2) once a round has waited stallAfter.
type stages struct {
	replicas   int
	version    func(replica int) uint64
	dumpPrefix string
	stallAfter time.Duration

	mu       sync.Mutex             // guards the fields below
	notified map[uint64]time.Time   // version -> NOTIFY delivered
	pub      []map[uint64]time.Time // replica -> version -> published
	rounds   []*roundStages
}

// processStart approximates the process's start (as GODEBUG=gctrace=1
// counts it), so rounds can be matched with its lines.
var processStart = time.Now()

type roundStages struct {
	round       int
	via         int // replica the change was made through
	version     uint64
	t0          time.Time
	answered    time.Time
	first, last []time.Time // by replica
	gcs         int64
	gcPause     time.Duration
	dumped      string
}

func newStages(replicas int, version func(int) uint64, dumpPrefix string, stallAfter time.Duration) *stages {
	s := &stages{replicas: replicas, version: version, dumpPrefix: dumpPrefix, stallAfter: stallAfter, notified: map[uint64]time.Time{}}
	for range replicas {
		s.pub = append(s.pub, map[uint64]time.Time{})
	}
	return s
}

// listen records the delivery time of each version's NOTIFY on the
// registry's channel until ctx ends.
func (s *stages) listen(ctx context.Context, dsn string, ready chan<- error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		ready <- fmt.Errorf("stages: %w", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{postgres.Channel}.Sanitize()); err != nil {
		ready <- fmt.Errorf("stages: %w", err)
		return
	}
	ready <- nil
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		at := time.Now()
		vs, _, _ := strings.Cut(n.Payload, " ")
		if v, err := strconv.ParseUint(vs, 10, 64); err == nil {
			s.mu.Lock()
			s.notified[v] = at
			s.mu.Unlock()
		}
	}
}

// sample records, every millisecond until ctx ends, the first time each
// replica was seen at each version.
func (s *stages) sample(ctx context.Context) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for r := range s.replicas {
				v := s.version(r)
				if _, ok := s.pub[r][v]; !ok {
					s.pub[r][v] = now
				}
			}
			s.mu.Unlock()
		}
	}
}

// start begins round r, whose change goes through replica via; the
// caller fills in the round's answered, version, first and last before
// calling end, which stops its stall dump, or waits for it once begun.
func (s *stages) start(r, via int) (rs *roundStages, end func()) {
	var gc debug.GCStats
	debug.ReadGCStats(&gc)
	rs = &roundStages{round: r, via: via, t0: time.Now(), gcs: gc.NumGC, gcPause: gc.PauseTotal}
	var timer *time.Timer
	dumpDone := make(chan struct{})
	if s.dumpPrefix != "" {
		timer = time.AfterFunc(s.stallAfter, func() {
			defer close(dumpDone)
			name := fmt.Sprintf("%s.round%02d.txt", s.dumpPrefix, r)
			if err := writeGoroutines(name); err != nil {
				fmt.Fprintln(os.Stderr, "registry-bench:", err)
				return
			}
			s.mu.Lock()
			rs.dumped = name
			s.mu.Unlock()
		})
	}
	return rs, func() {
		if timer != nil && !timer.Stop() {
			<-dumpDone
		}
		var gc debug.GCStats
		debug.ReadGCStats(&gc)
		s.mu.Lock()
		rs.gcs, rs.gcPause = gc.NumGC-rs.gcs, gc.PauseTotal-rs.gcPause
		s.rounds = append(s.rounds, rs)
		s.mu.Unlock()
	}
}

// writeGoroutines writes every goroutine's stack (the "goroutine" profile,
// debug=2) to name.
func writeGoroutines(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("goroutine dump: %w", err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		f.Close()
		return fmt.Errorf("goroutine dump: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("goroutine dump: %w", err)
	}
	return nil
}

// print writes one line per round: each stage's time after the change
// call was made, in milliseconds.
func (s *stages) print(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := func(t, t0 time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return strconv.FormatInt(t.Sub(t0).Milliseconds(), 10)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	hdr := "round\tat\tvia\tversion\tanswered\tnotified\t"
	for r := range s.replicas {
		hdr += fmt.Sprintf("pub %d\tfirst %d\tlast %d\t", r, r, r)
	}
	fmt.Fprintln(tw, hdr+"GCs\tGC pause\tdump\t")
	for _, rs := range s.rounds {
		line := fmt.Sprintf("%d\t%.1fs\t%d\t%d\t%s\t%s\t", rs.round, rs.t0.Sub(processStart).Seconds(), rs.via, rs.version, ms(rs.answered, rs.t0), ms(s.notified[rs.version], rs.t0))
		for r := range s.replicas {
			line += fmt.Sprintf("%s\t%s\t%s\t", ms(s.pub[r][rs.version], rs.t0), ms(rs.first[r], rs.t0), ms(rs.last[r], rs.t0))
		}
		dump := rs.dumped
		if dump == "" {
			dump = "-"
		}
		fmt.Fprintf(tw, "%s%d\t%s\t%s\t\n", line, rs.gcs, rs.gcPause.Round(10*time.Microsecond), dump)
	}
	return tw.Flush()
}
