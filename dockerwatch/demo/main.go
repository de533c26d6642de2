// Command tunnelmesh-demo-web is the compose demo's container (image
// tunnelmesh/demo-web, FROM scratch) and its client, for machines and
// containers without curl.
//
//	tunnelmesh-demo-web [--listen :8080]        serve HTTP
//	tunnelmesh-demo-web get [--timeout 5s] [--discard] URL
//	                                            GET URL, print the body
//
// The server answers GET / with "hello from NAME" (NAME: the environment
// variable, default the hostname) and GET /bytes?n=N with N zero bytes. The
// client prints the body to stdout and, for a body of a megabyte or more,
// its size and rate to stderr; it exits 1 when the request fails or the
// status is not 200.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2:]))
	}
	listen := flag.String("listen", ":8080", "HTTP listen address")
	flag.Parse()
	name := os.Getenv("NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	srv := &http.Server{Addr: *listen, Handler: handler(name), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(os.Stderr, "tunnelmesh-demo-web: serving %s as %q\n", *listen, name)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-demo-web:", err)
		os.Exit(1)
	}
}

// handler serves GET / and GET /bytes?n=N.
func handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n: want a byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	return mux
}

func get(args []string) int {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long (the whole request)")
	discard := fs.Bool("discard", false, "do not print the body (for /bytes)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: tunnelmesh-demo-web get [--timeout 5s] [--discard] URL")
		return 2
	}
	var out io.Writer = os.Stdout
	if *discard {
		out = io.Discard
	}
	if err := fetch(fs.Arg(0), *timeout, out); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-demo-web get:", err)
		return 1
	}
	return 0
}

func fetch(url string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	n, err := io.Copy(out, resp.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if n >= 1<<20 {
		d := time.Since(start)
		fmt.Fprintf(os.Stderr, "%d bytes in %s: %.1f MB/s\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds()/1e6)
	}
	return nil
}
