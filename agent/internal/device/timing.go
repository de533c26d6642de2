package device

import (
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// timing holds the protocol timers a Device uses. Production code always
// uses defaultTiming (the constants in package wire); tests in this package
// shrink them to exercise rekeying and expiry in seconds.
type timing struct {
	rekeyAfterTime      time.Duration
	rejectAfterTime     time.Duration
	rekeyTimeout        time.Duration
	jitterMax           time.Duration
	keepaliveTimeout    time.Duration
	rekeyAttemptTime    time.Duration
	rekeyAfterMessages  uint64
	rejectAfterMessages uint64
	initiationRate      time.Duration
	pathTick            time.Duration // how often path selection runs
	pathProbeInterval   time.Duration // first probe interval (doubles per unanswered probe)
	pathTimeout         time.Duration // a path unanswered this long is dead
	pathIdleProbe       time.Duration // an idle current path is probed this often
	alwaysUnderLoad     bool          // tests: demand cookies and rate limit as if the handshake queue were busy
}

func defaultTiming() timing {
	return timing{
		rekeyAfterTime:      wire.RekeyAfterTime,
		rejectAfterTime:     wire.RejectAfterTime,
		rekeyTimeout:        wire.RekeyTimeout,
		jitterMax:           wire.RekeyTimeoutJitterMax,
		keepaliveTimeout:    wire.KeepaliveTimeout,
		rekeyAttemptTime:    wire.RekeyAttemptTime,
		rekeyAfterMessages:  wire.RekeyAfterMessages,
		rejectAfterMessages: wire.RejectAfterMessages,
		initiationRate:      wire.HandshakeInitiationRate,
		pathTick:            250 * time.Millisecond,
		pathProbeInterval:   time.Second,
		pathTimeout:         2 * time.Second,
		pathIdleProbe:       5 * time.Second,
	}
}
