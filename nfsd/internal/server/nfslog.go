package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	nfs "github.com/willscott/go-nfs"
)

// SetLibraryLogger sends go-nfs's log lines to log (its errors as debug: a
// client's bad request is not nfsd's error, and go-nfs logs each one).
// go-nfs has one logger per process.
func SetLibraryLogger(log *slog.Logger) { nfs.SetLogger(&nfsLog{log: log.With("lib", "go-nfs")}) }

type nfsLog struct {
	log *slog.Logger
}

func (l *nfsLog) SetLevel(nfs.LogLevel)  {}
func (l *nfsLog) GetLevel() nfs.LogLevel { return nfs.DebugLevel }
func (l *nfsLog) ParseLevel(string) (nfs.LogLevel, error) {
	return nfs.DebugLevel, nil
}

func (l *nfsLog) out(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, strings.TrimSpace(msg))
	}
}

func (l *nfsLog) Panic(a ...any)            { l.out(slog.LevelError, fmt.Sprint(a...)) }
func (l *nfsLog) Fatal(a ...any)            { l.out(slog.LevelError, fmt.Sprint(a...)) }
func (l *nfsLog) Error(a ...any)            { l.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (l *nfsLog) Warn(a ...any)             { l.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (l *nfsLog) Info(a ...any)             { l.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (l *nfsLog) Debug(a ...any)            { l.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (l *nfsLog) Trace(a ...any)            {}
func (l *nfsLog) Print(a ...any)            { l.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (l *nfsLog) Panicf(f string, a ...any) { l.out(slog.LevelError, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Fatalf(f string, a ...any) { l.out(slog.LevelError, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Errorf(f string, a ...any) { l.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Warnf(f string, a ...any)  { l.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Infof(f string, a ...any)  { l.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Debugf(f string, a ...any) { l.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l *nfsLog) Tracef(f string, a ...any) {}
func (l *nfsLog) Printf(f string, a ...any) { l.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
