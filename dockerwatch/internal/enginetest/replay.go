// Package enginetest replays a recorded Docker engine stream as an
// engine.Source, and records one from a real engine (see record_test.go).
// The replay adds nothing to what the engine sent: each step delivers the
// events the engine sent for one action, after which List answers the
// container list the engine returned after them.
package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// Recording is a real engine's answers during a scripted run.
type Recording struct {
	// Engine is the engine's version and API version, for the record.
	Engine string `json:"engine"`
	// Initial is the container list before the first step.
	Initial []container.Summary `json:"initial"`
	Steps   []Step              `json:"steps"`
}

// Step is one action of the recorder and the engine's answers to it.
type Step struct {
	// Action is what the recorder did (docker CLI arguments).
	Action string `json:"action"`
	// Events are the container events the engine streamed for it.
	Events []events.Message `json:"events"`
	// List is the container list the engine returned after them.
	List []container.Summary `json:"list"`
}

// Load reads a recording written by the recorder.
func Load(path string) (Recording, error) {
	var r Recording
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("load recording: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("load recording %s: %w", path, err)
	}
	return r, nil
}

// ErrStreamBroken is what a broken stream reports (see Replay.Break).
var ErrStreamBroken = errors.New("event stream broken")

// Replay is an engine.Source that replays a Recording step by step.
type Replay struct {
	mu     sync.Mutex // guards the fields below
	list   []container.Summary
	subs   []*sub
	lists  int // List calls
	down   bool
	opened int // Events calls
}

type sub struct {
	ctx  context.Context
	msgs chan events.Message
	errs chan error
}

// NewReplay returns a replay whose List answers initial.
func NewReplay(initial []container.Summary) *Replay {
	return &Replay{list: initial}
}

// ErrDaemonDown is what List and Events answer while the daemon is down.
var ErrDaemonDown = errors.New("cannot connect to the Docker daemon")

// List implements engine.Source.
func (r *Replay) List(ctx context.Context) ([]container.Summary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, ErrDaemonDown
	}
	r.lists++
	return append([]container.Summary(nil), r.list...), nil
}

// Events implements engine.Source.
func (r *Replay) Events(ctx context.Context) (<-chan events.Message, <-chan error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &sub{ctx: ctx, msgs: make(chan events.Message, 256), errs: make(chan error, 1)}
	r.opened++
	if r.down {
		s.errs <- ErrDaemonDown
		return s.msgs, s.errs
	}
	r.subs = append(r.subs, s)
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, x := range r.subs {
			if x == s {
				r.subs = append(r.subs[:i], r.subs[i+1:]...)
				s.errs <- ctx.Err()
				break
			}
		}
	}()
	return s.msgs, s.errs
}

// Play makes List answer st.List and sends st.Events to every open stream.
func (r *Replay) Play(st Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = st.List
	for _, s := range r.subs {
		for _, m := range st.Events {
			s.msgs <- m
		}
	}
}

// SetList makes List answer l (with no events: what a restarted daemon or
// a missed stream looks like).
func (r *Replay) SetList(l []container.Summary) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = l
}

// Down breaks every open stream and refuses calls until Up, as a stopped
// daemon does.
func (r *Replay) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for _, s := range r.subs {
		s.errs <- ErrDaemonDown
	}
	r.subs = nil
}

// Up answers calls again.
func (r *Replay) Up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = false
}

// Opened returns how many times Events was called.
func (r *Replay) Opened() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened
}

// Streams returns how many event streams are open.
func (r *Replay) Streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}
