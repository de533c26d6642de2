// Command tunnelmesh-sshgw runs the SSH transport endpoint of a node next to
// its agent: an SSH server with the node key as host key that accepts only
// the mesh's nodes and copies each peer's packet channel to the agent's
// packet port.
//
//	tunnelmesh-sshgw -config sshgw.yaml
//	tunnelmesh-sshgw -credentials /var/lib/tunnelmesh/credentials.json -forward-to 127.0.0.1:7600 [-listen :2222]
//	tunnelmesh-sshgw -version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/allowset"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/config"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-sshgw:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfgPath   = flag.String("config", "", "YAML configuration file")
		listen    = flag.String("listen", "", "SSH listen address (default :2222)")
		creds     = flag.String("credentials", "", "agent credentials file (host key and netmap)")
		keyFile   = flag.String("key-file", "", "node key file, without a registry")
		forwardTo = flag.String("forward-to", "", "the agent's packet port, e.g. 127.0.0.1:7600")
		showVer   = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *showVer {
		fmt.Println("tunnelmesh-sshgw", version)
		return nil
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	for dst, v := range map[*string]string{&cfg.Listen: *listen, &cfg.Credentials: *creds, &cfg.KeyFile: *keyFile, &cfg.ForwardTo: *forwardTo} {
		if v != "" {
			*dst = v
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	base, err := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	log := logging.Component(base, "sshgw-main")

	var (
		key nodekey.PrivateKey
		rc  *regclient.Client
	)
	if cfg.Credentials != "" {
		c, err := regclient.LoadCredentials(cfg.Credentials)
		if err != nil {
			return err
		}
		key = c.Key
		if rc, err = regclient.New(c); err != nil {
			return err
		}
	} else if key, err = nodekey.Load(cfg.KeyFile); err != nil {
		return err
	}
	srv, err := server.New(server.Config{HostKey: key, ForwardTo: cfg.ForwardTo, IdleTimeout: cfg.IdleTimeout, Logger: base})
	if err != nil {
		return err
	}
	if rc == nil {
		keys, _ := cfg.Keys() // validated
		srv.SetAllowed(keys)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		if rc != nil {
			if err := allowset.Follow(ctx, rc, srv.SetAllowed, log); err != nil {
				errc <- fmt.Errorf("follow netmap: %w", err)
			}
		}
	}()
	log.Info("ssh gateway listening", "addr", l.Addr().String(), "host_key", key.Public().Fingerprint(),
		"forward_to", cfg.ForwardTo, "netmap", rc != nil)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stop()
	srv.Close()
	<-followDone
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("ssh gateway stopped")
	return nil
}
