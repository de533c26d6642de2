// Command meshtool is the traffic tool of the namespace tests: a TCP sender
// and receiver that checksum what they move, and an ICMP echo client.
//
//	meshtool send HOST:PORT BYTES SEED   send BYTES pseudo-random bytes; print "sent N SHA256"
//	meshtool recv ADDR:PORT              accept one connection, read to EOF; print "recv N SHA256"
//	meshtool ping IP COUNT               ICMP echo; print "reply from IP rtt D"; exit 0 if any reply
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
	"os"
	"strconv"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: meshtool send|recv|ping ..."))
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(os.Args[2:])
	case "recv":
		err = recv(os.Args[2:])
	case "ping":
		err = ping(os.Args[2:])
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
