package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Every node call is signed, and each accepted signature is recorded
// (store.Replays) before the call is answered: with thousands of nodes
// re-polling their netmap after each change, that is thousands of inserts
// at once. One insert per call would queue them on the pool's few
// connections, and every other query (the netmap reload after a change
// among them) behind them. AddReplay therefore hands its hash to a few
// recorders, goroutines that each take everything waiting and record it in
// one statement: a burst of N calls costs a few round trips on at most
// replayRecorders connections.
//
// A single recorder would make every call wait for the batch in flight
// and then its own, and a recorder short of CPU (its answer arrived, the
// goroutine not yet run among thousands of runnable requests) would hold
// every call of the replica: a goroutine dump of a 4.2 s round at 5,000
// watchers with busy loops beside them showed 2,351 calls waiting so.
// Several recorders let the next batch go while one waits. Two
// batches holding the same hash are recorded correctly: PostgreSQL's
// unique index makes the second insert wait for the first's commit and
// then skip the hash, so exactly one call is told it is new.

// replayBatch bounds the signatures one statement records.
const replayBatch = 1024

// replayRecorders is how many batches are recorded at once, each on a
// connection of the pool (pgxpool keeps at least 4), so that the rest of
// the pool stays free for the other queries.
const replayRecorders = 2

// replayTimeout bounds one batch's statement.
const replayTimeout = 10 * time.Second

// errClosed is returned by calls on a closed store.
var errClosed = errors.New("store is closed")

type replayReq struct {
	hash [32]byte
	at   int64
	// res receives the result once (buffered: the recorder never waits
	// for a caller that gave up).
	res chan replayRes
}

type replayRes struct {
	fresh bool
	err   error
}

// AddReplay implements store.Replays. Concurrent calls are recorded
// together, in one statement; of calls with the same hash, on any replica,
// exactly one is told it is new.
func (s *Store) AddReplay(ctx context.Context, hash [32]byte, at time.Time) (bool, error) {
	r := &replayReq{hash: hash, at: at.UnixNano(), res: make(chan replayRes, 1)}
	select {
	case s.replays <- r:
	case <-ctx.Done():
		return false, fmt.Errorf("record signature: %w", ctx.Err())
	case <-s.quit:
		return false, fmt.Errorf("record signature: %w", errClosed)
	}
	select {
	case res := <-r.res:
		if res.err != nil {
			return false, fmt.Errorf("record signature: %w", res.err)
		}
		return res.fresh, nil
	case <-ctx.Done():
		return false, fmt.Errorf("record signature: %w", ctx.Err())
	case <-s.quit:
		return false, fmt.Errorf("record signature: %w", errClosed)
	}
}

// recordReplays records the queued signatures, everything waiting at once,
// until the store is closed. Several run at once (replayRecorders).
func (s *Store) recordReplays() {
	defer s.recorders.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	batch := make([]*replayReq, 0, replayBatch)
	hashes := make([][]byte, 0, replayBatch)
	ats := make([]int64, 0, replayBatch)
	first := make(map[[32]byte]int, replayBatch)
	recorded := make(map[[32]byte]bool, replayBatch)
	for {
		select {
		case r := <-s.replays:
			batch = append(batch[:0], r)
		case <-s.quit:
			return
		}
	fill:
		for len(batch) < replayBatch {
			select {
			case r := <-s.replays:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// A hash twice in one batch is new at most once: only its first
		// request is sent.
		hashes, ats = hashes[:0], ats[:0]
		clear(first)
		for i, r := range batch {
			if _, dup := first[r.hash]; dup {
				continue
			}
			first[r.hash] = i
			hashes = append(hashes, r.hash[:])
			ats = append(ats, r.at)
		}
		clear(recorded)
		err := s.insertReplays(ctx, hashes, ats, recorded)
		for i, r := range batch {
			if err != nil {
				r.res <- replayRes{err: err}
				continue
			}
			r.res <- replayRes{fresh: first[r.hash] == i && recorded[r.hash]}
		}
	}
}

// insertReplays inserts the hashes not recorded yet and marks them in
// recorded.
func (s *Store) insertReplays(ctx context.Context, hashes [][]byte, ats []int64, recorded map[[32]byte]bool) error {
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `INSERT INTO replays (hash, at) SELECT h, a FROM unnest($1::bytea[], $2::bigint[]) AS t(h, a)
		ON CONFLICT (hash) DO NOTHING RETURNING hash`, hashes, ats)
	if err != nil {
		return err
	}
	var h []byte
	_, err = pgx.ForEachRow(rows, []any{&h}, func() error {
		if len(h) != 32 {
			return fmt.Errorf("recorded hash of %d bytes", len(h))
		}
		recorded[[32]byte(h)] = true
		return nil
	})
	return err
}
