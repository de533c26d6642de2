// Command sigint is the daemontest tests' child process: it says "ready" on
// standard error and then, on SIGINT, exits 0 ("clean"), exits 3 ("fail"),
// or keeps running ("ignore").
package main

import (
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	fmt.Fprintln(os.Stderr, "ready")
	<-sig
	switch os.Args[1] {
	case "clean":
		os.Exit(0)
	case "fail":
		os.Exit(3)
	default:
		time.Sleep(time.Hour)
	}
}
