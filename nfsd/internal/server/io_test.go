package server

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// readReplyReference encodes READ3resok the way the published go-nfs
// v0.0.4 encodes it with go-xdr (the status, post_op_attr, then count, eof
// and the data as an XDR opaque), the reference the patched READ path,
// which sends the data from a pooled buffer, must match byte for byte.
func readReplyReference(t *testing.T, f *fixture, name string, off uint64, count uint32) []byte {
	t.Helper()
	info, err := f.srv.byName["shared"].fs.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	eof := uint32(0)
	switch size := uint64(info.Size()); {
	case off >= size:
		count, eof = 0, 1
	case size-off <= uint64(count):
		count, eof = uint32(size-off), 1
	}
	count = min(count, nfs.MaxRead)
	data := make([]byte, count)
	file, err := os.Open(filepath.Join(f.shared, name))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.ReadAt(data, int64(off)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := xdr.Write(&b, uint32(nfs.NFSStatusOk)); err != nil {
		t.Fatal(err)
	}
	if err := nfs.WritePostOpAttrs(&b, nfs.ToFileAttribute(info, name)); err != nil {
		t.Fatal(err)
	}
	if err := xdr.Write(&b, struct {
		Count, EOF uint32
		Data       []byte
	}{count, eof, data}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadRepliesUnchanged(t *testing.T) {
	f := newFixture(t)
	const size = 1<<20 + 5 // data ending off a 4-byte boundary: padding
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i*31 + i>>8)
	}
	if err := os.WriteFile(filepath.Join(f.shared, "odd.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	// Larger than go-nfs's MaxRead (16 MiB): a READ of all of it is cut there.
	big, err := os.Create(filepath.Join(f.shared, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := big.WriteAt([]byte("tail"), 20<<20-4); err != nil {
		t.Fatal(err)
	}
	big.Close()
	r := dialRaw(t, f.listen(ipBuild1))
	for _, tc := range []struct {
		name  string
		file  string
		off   uint64
		count uint32
	}{
		{"start", "odd.bin", 0, 4096},
		{"1 MiB short of EOF", "odd.bin", 1, 1 << 20},
		{"whole file", "odd.bin", 0, size},
		{"more than the file", "odd.bin", 0, 2 << 20},
		{"across EOF, 3 bytes", "odd.bin", size - 3, 1 << 20},
		{"up to EOF exactly", "odd.bin", size - 6, 6},
		{"at EOF", "odd.bin", size, 100},
		{"past EOF", "odd.bin", size + 1000, 100},
		{"zero bytes", "odd.bin", 7, 0},
		{"cut at MaxRead", "big.bin", 0, 20 << 20},
		{"up to EOF past MaxRead", "big.bin", 4<<20 + 1, 20 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fh := f.srv.byName["shared"].index.Handle(tc.file)
			want := readReplyReference(t, f, tc.file, tc.off, tc.count)
			got, err := r.call(100003, 3, 6, ioArgs(nil, fh, tc.off, tc.count, nil))
			if err != nil {
				t.Fatalf("READ: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("READ(%d, %d) = %d bytes %x..., want %d bytes %x...",
					tc.off, tc.count, len(got), got[:min(len(got), 120)], len(want), want[:min(len(want), 120)])
			}
		})
	}
	// A READ that fails (a directory's handle: EISDIR) is the error reply
	// it was: NFS3ERR_IO, no attributes.
	got, err := r.call(100003, 3, 6, ioArgs(nil, f.srv.byName["shared"].index.Handle("."), 0, 4096, nil))
	if err != nil {
		t.Fatalf("READ of a directory: %v", err)
	}
	if want := []byte{0, 0, 0, 5, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Fatalf("READ of a directory = %x, want %x", got, want)
	}
}

func TestWriteData(t *testing.T) {
	f := newFixture(t)
	p := filepath.Join(f.shared, "w.bin")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fh := f.srv.byName["shared"].index.Handle("w.bin")
	r := dialRaw(t, f.listen(ipBuild1))

	// 5 bytes at offset 3 (3 bytes of padding on the wire).
	res, err := r.call(100003, 3, 7, ioArgs(nil, fh, 3, 5, []byte("abcde")))
	if err != nil {
		t.Fatalf("WRITE: %v", err)
	}
	// status, wcc_data (pre_op_attr: 1 + 24, post_op_attr: 1 + 84), count, committed, verifier
	if len(res) != 4+4+24+4+84+4+4+8 || binary.BigEndian.Uint32(res) != 0 {
		t.Fatalf("WRITE = %x, want NFS3_OK and 136 bytes", res)
	}
	if n := binary.BigEndian.Uint32(res[120:]); n != 5 {
		t.Fatalf("WRITE count = %d, want 5", n)
	}
	if b, _ := os.ReadFile(p); string(b) != "012abcde89" {
		t.Fatalf("file after WRITE = %q, want %q", b, "012abcde89")
	}

	// Data announced longer than what the request holds: NFS3ERR_INVAL,
	// empty wcc_data, nothing written.
	args := ioArgs(nil, fh, 0, 1<<20, []byte("XXXXXXXX"))
	binary.BigEndian.PutUint32(args[len(args)-8-4:], 1<<20)
	res, err = r.call(100003, 3, 7, args)
	if err != nil {
		t.Fatalf("short WRITE: %v", err)
	}
	if want := []byte{0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(res, want) {
		t.Fatalf("short WRITE = %x, want %x", res, want)
	}
	if b, _ := os.ReadFile(p); string(b) != "012abcde89" {
		t.Fatalf("file after refused WRITE = %q, want %q", b, "012abcde89")
	}
	// The connection still answers.
	if _, err := r.call(100003, 3, 0, nil); err != nil {
		t.Fatalf("NULL after the refused WRITE: %v", err)
	}
}

// TestIOAllocations: READs and WRITEs of 1 MiB allocate no buffer for their
// data (pooled), so what each allocates is small against the MiB it moves.
func TestIOAllocations(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "seq.bin"), make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	fh := f.srv.byName["shared"].index.Handle("seq.bin")
	r := dialRaw(t, f.listen(ipBuild1))
	data := bytes.Repeat([]byte{0xa5}, 1<<20)
	args := make([]byte, 0, 2<<20)
	out := make([]byte, 0, 2<<20)
	rec := make([]byte, 2<<20)
	for _, tc := range []struct {
		name string
		proc uint32
		data []byte
	}{{"READ", 6, nil}, {"WRITE", 7, data}} {
		i := 0
		op := func() {
			off := uint64(i%8) << 20
			i++
			res, err := r.callInto(100003, 3, tc.proc, ioArgs(args[:0], fh, off, 1<<20, tc.data), out, rec)
			if err != nil || len(res) < 4 || binary.BigEndian.Uint32(res) != 0 {
				t.Fatalf("%s at %d: %v %x", tc.name, off, err, res[:min(len(res), 16)])
			}
		}
		for range 4 { // fill the pools
			op()
		}
		const runs = 50
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			op()
		}
		runtime.ReadMemStats(&after)
		// A collection in between may empty the pools; a few refills
		// are allowed, a buffer per request is not.
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 64<<10 {
			t.Errorf("%s of 1 MiB allocates %d bytes, want at most 64 KiB", tc.name, per)
		}
	}
}

// countingConn counts the writes to a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

// TestOneWritePerReply: each reply, record mark included, goes out in one
// write, 1 MiB READ replies as well as small ones (two writes would cost a
// short TCP segment per reply).
func TestOneWritePerReply(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "seq.bin"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	fh := f.srv.byName["shared"].index.Handle("seq.bin")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.srv.Serve(f.ctx, &fromListener{Listener: cl, from: ipBuild1}); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	r := dialRaw(t, l.Addr().String())
	const reads = 4
	for i := range reads {
		if _, err := r.call(100003, 3, 6, ioArgs(nil, fh, uint64(i)<<20, 1<<20, nil)); err != nil {
			t.Fatalf("READ: %v", err)
		}
		if _, err := r.call(100003, 3, 0, nil); err != nil {
			t.Fatalf("NULL: %v", err)
		}
	}
	if n := cl.writes.Load(); n != 2*reads {
		t.Fatalf("%d replies took %d writes, want %d", 2*reads, n, 2*reads)
	}
}
