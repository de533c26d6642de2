package server

import (
	"log/slog"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/ratelimit"
)

// Limits on the warnings about failed joins and failed node
// authentication, per kind (a flood must not flood the log).
const (
	FailureLogsPerMinute = 20
	FailureLogBurst      = 10
)

// failLog writes warnings about refused joins and node calls, at most
// FailureLogsPerMinute a minute (burst FailureLogBurst) per message. The
// lines it drops are counted, and the count goes out with the next line of
// that message as "suppressed". Callers never pass secrets (tokens,
// credentials, signatures): only the source, node ID and the reason.
type failLog struct {
	logger  *slog.Logger
	limiter *ratelimit.Limiter[string]

	mu      sync.Mutex // guards dropped
	dropped map[string]int
}

func newFailLog(log *slog.Logger) *failLog {
	return &failLog{logger: log, limiter: ratelimit.New[string](FailureLogsPerMinute, FailureLogBurst), dropped: make(map[string]int)}
}

func (f *failLog) log(now time.Time, msg string, args ...any) {
	if !f.limiter.Take(msg, now) {
		f.mu.Lock()
		f.dropped[msg]++
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	n := f.dropped[msg]
	delete(f.dropped, msg)
	f.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	f.logger.Warn(msg, args...)
}
