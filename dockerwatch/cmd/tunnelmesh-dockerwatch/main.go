// Command tunnelmesh-dockerwatch turns a Docker host's labelled containers
// into services of the node whose network namespace it shares: a kernel
// forward from the node's mesh address, and names published through the
// node's agent. See the module README.
//
//	tunnelmesh-dockerwatch --config /etc/tunnelmesh/dockerwatch.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/app"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	path := flag.String("config", "", "configuration file (YAML); empty: the defaults")
	check := flag.Bool("check", false, "check the configuration and exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("tunnelmesh-dockerwatch", version)
		return
	}
	c := config.Default()
	if *path != "" {
		var err error
		if c, err = config.Load(*path); err != nil {
			fmt.Fprintln(os.Stderr, "tunnelmesh-dockerwatch:", err)
			os.Exit(2)
		}
	}
	if *check {
		fmt.Println("configuration ok")
		return
	}
	log := app.Logger(c.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, c, log)
	stop()
	if err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}
