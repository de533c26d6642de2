// Command httpd is the test container's server: HTTP on :8080 answering
// "hello from NAME" (NAME from the environment), and UDP echo on :5353
// (HTTP_ADDR and UDP_ADDR override the addresses).
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	name := os.Getenv("NAME")
	httpAddr, udpAddr := env("HTTP_ADDR", ":8080"), env("UDP_ADDR", ":5353")
	go func() {
		pc, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				continue
			}
			pc.WriteTo(buf[:n], a)
		}
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	http.HandleFunc("/sink", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d\n", n)
	})
	if err := http.ListenAndServe(httpAddr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
