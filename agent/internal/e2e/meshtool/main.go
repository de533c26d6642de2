// Command meshtool is the traffic tool of the namespace tests: a TCP sender
// and receiver that checksum what they move, and an ICMP echo client.
//
//	meshtool send HOST:PORT BYTES SEED   send BYTES pseudo-random bytes; print "sent N SHA256"
//	meshtool recv ADDR:PORT              accept one connection, read to EOF; print "recv N SHA256"
//	meshtool ping IP COUNT               ICMP echo; print "reply from IP rtt D"; exit 0 if any reply
//	meshtool serve IP PORT...            accept on each port, write "hello PORT\n", close
//	meshtool scan IP PORTS TIMEOUT       connect to each port (PORTS: 1-1024,8080); print "open P" for
//	                                     each that connected and greeted, then
//	                                     "scanned N open=[...] refused=N filtered=N"
//	meshtool get URL                     HTTP GET; print the body; exit 1 unless 200
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: meshtool send|recv|ping|serve|scan|get ARGS"))
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(os.Args[2:])
	case "recv":
		err = recv(os.Args[2:])
	case "ping":
		err = ping(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "scan":
		err = scan(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "meshtool:", err)
	os.Exit(1)
}

// stream is a reproducible pseudo-random byte stream.
type stream struct{ r *rand.ChaCha8 }

func (s stream) Read(p []byte) (int, error) {
	var b [8]byte
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(b[:], s.r.Uint64())
		copy(p[i:], b[:])
	}
	return len(p), nil
}

func send(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: send HOST:PORT BYTES SEED")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return err
	}
	seed, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return err
	}
	var conn net.Conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err = net.DialTimeout("tcp", args[0], 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	h := sha256.New()
	src := io.LimitReader(stream{rand.NewChaCha8(key)}, n)
	w := bufio.NewWriterSize(conn, 256<<10)
	start := time.Now()
	sent, err := io.Copy(io.MultiWriter(w, h), src)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("send after %d bytes: %w", sent, err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	io.Copy(io.Discard, conn) // wait for the receiver to close
	conn.Close()
	el := time.Since(start)
	fmt.Printf("sent %d %s %.1fMbit/s\n", sent, hex.EncodeToString(h.Sum(nil)), float64(sent)*8/el.Seconds()/1e6)
	return nil
}

func recv(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: recv ADDR:PORT")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("listening")
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(conn, 256<<10))
	if err != nil {
		return fmt.Errorf("recv after %d bytes: %w", n, err)
	}
	fmt.Printf("recv %d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	return nil
}

func ping(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: ping IP COUNT")
	}
	dst := net.ParseIP(args[0])
	count, err := strconv.Atoi(args[1])
	if dst == nil || dst.To4() == nil || err != nil || count < 1 {
		return errors.New("ping: want an IPv4 address and a count")
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	replies := 0
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("tunnelmesh-e2e")}}
		b, _ := msg.Marshal(nil)
		start := time.Now()
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst}); err != nil {
			fmt.Printf("send to %s: %v\n", dst, err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				fmt.Printf("timeout seq %d\n", seq)
				break
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != id || e.Seq != seq || from.String() != dst.String() {
				continue
			}
			replies++
			fmt.Printf("reply from %s seq %d rtt %v\n", from, seq, time.Since(start))
			break
		}
	}
	if replies == 0 {
		return fmt.Errorf("no reply from %s", dst)
	}
	return nil
}

func serve(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: serve IP PORT [PORT...]")
	}
	errc := make(chan error, len(args)-1)
	for _, port := range args[1:] {
		ln, err := net.Listen("tcp", net.JoinHostPort(args[0], port))
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "hello %s\n", port)
				c.Close()
			}
		}()
	}
	fmt.Println("serving")
	return <-errc
}

func scan(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: scan IP PORTS TIMEOUT")
	}
	var ports []int
	for _, part := range strings.Split(args[1], ",") {
		first, last, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(first)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(last); err != nil {
				return err
			}
		}
		for p := a; p <= b; p++ {
			ports = append(ports, p)
		}
	}
	timeout, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	type result struct {
		port int
		kind string // open, refused, filtered
	}
	res := make(chan result)
	sem := make(chan struct{}, 1000)
	go func() {
		for _, p := range ports {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				c, err := net.DialTimeout("tcp", net.JoinHostPort(args[0], strconv.Itoa(p)), timeout)
				switch {
				case err == nil:
					c.SetDeadline(time.Now().Add(2 * time.Second))
					line, _ := bufio.NewReader(c).ReadString('\n')
					c.Close()
					if line == fmt.Sprintf("hello %d\n", p) {
						res <- result{p, "open"}
					} else {
						res <- result{p, "silent"}
					}
				case errors.Is(err, syscall.ECONNREFUSED):
					res <- result{p, "refused"}
				default:
					res <- result{p, "filtered"}
				}
			}()
		}
	}()
	var open []int
	counts := map[string]int{}
	for range ports {
		r := <-res
		counts[r.kind]++
		if r.kind == "open" {
			open = append(open, r.port)
		}
	}
	slices.Sort(open)
	for _, p := range open {
		fmt.Printf("open %d\n", p)
	}
	fmt.Printf("scanned %d open=%v refused=%d filtered=%d silent=%d\n", len(ports), open, counts["refused"], counts["filtered"], counts["silent"])
	return nil
}

func get(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: get URL")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", args[0], resp.Status)
	}
	return nil
}
