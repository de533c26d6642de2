package weed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Supervision constants.
const (
	// StopTimeout is how long the child has to exit after SIGTERM before
	// it is killed.
	StopTimeout = 60 * time.Second
	// MinBackoff is the first wait before a restart; it doubles per crash
	// up to the supervisor's MaxBackoff and resets after StableAfter.
	MinBackoff  = 500 * time.Millisecond
	StableAfter = time.Minute
)

// Supervisor runs and restarts one weed server.
type Supervisor struct {
	Opts       Options
	MaxBackoff time.Duration
	Log        *slog.Logger
	// Output receives the child's stdout and stderr; os.Stderr when nil.
	Output io.Writer
	// Self, if set, is an executable that calls MaybeExec (os.Executable()
	// of tunnelmesh-storage): weed is started through it in a mount
	// namespace of its own with a private /tmp (needs CAP_SYS_ADMIN). Empty,
	// weed runs directly and shares the machine's /tmp.
	Self string
	// OnStart, if set, is called with the pid of each started child.
	OnStart func(pid int)
	// OnExit, if set, is called when a child exits on its own.
	OnExit func(err error)

	mu      sync.Mutex // guards the fields below
	proc    *os.Process
	ready   bool // SetReady was called for proc: it handles SIGHUP
	pending bool // a Reload waits for SetReady
}

// Reload asks the running child to reread its identities file (SIGHUP).
// Until SetReady confirms the child is serving, the reload is held back and
// sent by SetReady: a SIGHUP before weed has installed its handler would
// kill it, and a child that is still starting reads the file anyway. With
// no child running it does nothing: the next child reads the file as it
// starts.
func (s *Supervisor) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	if !s.ready {
		s.pending = true
		return nil
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload weed: %w", err)
	}
	return nil
}

// SetReady records that the child with pid answers requests, and sends a
// reload held back since it started. A stale pid (the child was restarted
// since) is ignored.
func (s *Supervisor) SetReady(pid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Pid != pid || s.ready {
		return nil
	}
	s.ready = true
	if !s.pending {
		return nil
	}
	s.pending = false
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload weed: %w", err)
	}
	return nil
}

// Ready reports whether the running child was confirmed with SetReady.
func (s *Supervisor) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && s.ready
}

// Pid returns the running child's pid, or 0.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Run starts the child and keeps it running until ctx ends, then stops it
// (SIGTERM, wait, SIGKILL after StopTimeout) and returns nil. It returns an
// error only when the child cannot be started at all (bad options, missing
// binary).
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.Opts.Validate(); err != nil {
		return err
	}
	bin, err := exec.LookPath(s.Opts.Binary)
	if err != nil {
		return fmt.Errorf("run weed: %w", err)
	}
	if err := os.MkdirAll(s.Opts.Dir, 0o700); err != nil {
		return fmt.Errorf("run weed: %w", err)
	}
	for _, d := range []string{"data", "master", "tmp"} {
		if err := os.MkdirAll(s.Opts.Dir+"/"+d, 0o700); err != nil {
			return fmt.Errorf("run weed: %w", err)
		}
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	out := s.Output
	if out == nil {
		out = os.Stderr
	}
	maxBackoff := max(s.MaxBackoff, MinBackoff)
	backoff := MinBackoff
	for {
		cmd := exec.Command(bin, s.Opts.Args()...)
		// Its own process group: a terminal's ^C reaches the supervisor,
		// which stops the child in order. If the supervisor dies without
		// stopping it, the child is killed: SeaweedFS recovers from kill -9,
		// while a weed outliving its supervisor would hold its ports.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if s.Self != "" {
			keep := []string{s.Opts.Dir, filepath.Dir(s.Opts.IdentitiesFile)}
			cmd = exec.Command(s.Self, execArgs(filepath.Join(s.Opts.Dir, "tmp"), keep, append([]string{bin}, s.Opts.Args()...))...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Unshareflags: syscall.CLONE_NEWNS}
		}
		cmd.Dir = s.Opts.Dir
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			if s.Self != "" && errors.Is(err, syscall.EPERM) {
				// No CAP_SYS_ADMIN (a container's default): its /tmp is
				// private to the container anyway.
				log.Warn("no mount namespace for weed; it shares this machine's /tmp", "err", err)
				s.Self = ""
				continue
			}
			return fmt.Errorf("run weed: %w", err)
		}
		started := time.Now()
		s.mu.Lock()
		// The new child reads the identities file as it starts: nothing
		// is pending for it.
		s.proc, s.ready, s.pending = cmd.Process, false, false
		s.mu.Unlock()
		log.Info("weed started", "pid", cmd.Process.Pid, "s3", s.Opts.S3Addr.String())
		if s.OnStart != nil {
			s.OnStart(cmd.Process.Pid)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		select {
		case <-ctx.Done():
			s.stop(cmd.Process, exited, log)
			return nil
		case err := <-exited:
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			if s.OnExit != nil {
				s.OnExit(err)
			}
			if time.Since(started) > StableAfter {
				backoff = MinBackoff
			}
			log.Error("weed exited; restarting", "err", err, "ran", time.Since(started).Round(time.Millisecond), "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func (s *Supervisor) stop(p *os.Process, exited <-chan error, log *slog.Logger) {
	log.Info("stopping weed", "pid", p.Pid)
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(StopTimeout)
	defer t.Stop()
	select {
	case err := <-exited:
		log.Info("weed stopped", "pid", p.Pid, "err", err)
	case <-t.C:
		log.Error("weed did not stop after SIGTERM; killing", "pid", p.Pid, "timeout", StopTimeout)
		_ = p.Kill()
		<-exited
	}
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
}
