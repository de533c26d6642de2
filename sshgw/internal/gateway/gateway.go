// Package gateway runs the standalone SSH gateway as its configuration
// says: the host key (from the agent's credentials or a key file), the SSH
// listener, the allow-set (the node's netmap, followed through the
// registry, or the fixed allow_keys) and the forwarding to the agent's
// packet port. Run blocks until its context ends and then closes every
// connection, so tunnelmesh-sshgw's main is flags, config, logger and
// signals only. The gateway exports no metrics of its own (see README).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/allowset"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/config"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// Run serves the gateway described by cfg (validated by the caller) until
// ctx ends, then closes the listener and every connection, waits for the
// netmap watch to stop and returns nil. A failure to start, of the
// listener, or of the netmap watch is returned as an error. log is the
// base logger; Run adds the component attributes.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	mlog := logging.Component(log, "sshgw-main")
	var (
		key nodekey.PrivateKey
		rc  *regclient.Client
		err error
	)
	if cfg.Credentials != "" {
		c, err := regclient.LoadCredentials(cfg.Credentials)
		if err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
		key = c.Key
		if rc, err = regclient.New(c); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	} else if key, err = nodekey.Load(cfg.KeyFile); err != nil {
		return fmt.Errorf("key_file: %w", err)
	}
	srv, err := server.New(server.Config{HostKey: key, ForwardTo: cfg.ForwardTo, IdleTimeout: cfg.IdleTimeout, Logger: log})
	if err != nil {
		return fmt.Errorf("start ssh server: %w", err)
	}
	if rc == nil {
		keys, err := cfg.Keys()
		if err != nil {
			return err
		}
		srv.SetAllowed(keys)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		if err := srv.Serve(l); err != nil {
			errc <- fmt.Errorf("serve: %w", err)
		}
	}()
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		if rc == nil {
			return
		}
		if err := allowset.Follow(ctx, rc, srv.SetAllowed, mlog); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("follow netmap: %w", err)
		}
	}()
	mlog.Info("ssh gateway listening", "addr", l.Addr().String(), "host_key", key.Public().Fingerprint(),
		"forward_to", cfg.ForwardTo, "netmap", rc != nil)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	cancel()
	srv.Close()
	<-serveDone
	<-followDone
	if err != nil {
		return err
	}
	mlog.Info("ssh gateway stopped")
	return nil
}
