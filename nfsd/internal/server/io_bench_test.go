package server

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Sequential 1 MiB READs and WRITEs through nfsd's server on loopback, one
// in flight, from a client that reuses its buffers: what is allocated and
// spent is the server's (and the kernel's loopback).
//
//	go test -run '^$' -bench 'IO' -benchmem -cpuprofile cpu.out -memprofile mem.out ./internal/server

const (
	benchChunk = 1 << 20
	benchFile  = 64 << 20
)

// ioArgs is READ3args (handle, offset, count) or, with data, WRITE3args
// (handle, offset, count, FILE_SYNC, data), appended to b.
func ioArgs(b, fh []byte, off uint64, count uint32, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(fh)))
	b = append(b, fh...)
	b = append(b, make([]byte, (4-len(fh)%4)%4)...)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, count)
	if data == nil {
		return b
	}
	b = binary.BigEndian.AppendUint32(b, 2) // FILE_SYNC
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	return append(b, make([]byte, (4-len(data)%4)%4)...)
}

// benchIO serves a 64 MiB file of f's shared export and returns a raw
// connection from build1 and the file's handle.
func benchIO(b *testing.B) (*rawConn, []byte) {
	f := newFixture(b)
	if err := os.WriteFile(filepath.Join(f.shared, "seq.bin"), make([]byte, benchFile), 0o644); err != nil {
		b.Fatal(err)
	}
	r := dialRaw(b, f.listen(ipBuild1))
	fh := f.srv.byName["shared"].index.Handle("seq.bin")
	if fh == nil {
		b.Fatal("no handle for seq.bin")
	}
	return r, fh
}

func BenchmarkIORead(b *testing.B) {
	r, fh := benchIO(b)
	args := make([]byte, 0, 64)
	out := make([]byte, 0, 128)
	rec := make([]byte, benchChunk+4096)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := uint64(i*benchChunk) % benchFile
		res, err := r.callInto(100003, 3, 6, ioArgs(args[:0], fh, off, benchChunk, nil), out, rec)
		if err != nil {
			b.Fatalf("READ at %d: %v", off, err)
		}
		// status, post_op_attr (1 + fattr3), count, eof, data length, data
		if len(res) != 4+88+12+benchChunk || binary.BigEndian.Uint32(res) != 0 {
			b.Fatalf("READ at %d: %d bytes of reply, status %d", off, len(res), binary.BigEndian.Uint32(res))
		}
	}
}

func BenchmarkIOWrite(b *testing.B) {
	r, fh := benchIO(b)
	data := make([]byte, benchChunk)
	for i := range data {
		data[i] = byte(i * 7)
	}
	args := make([]byte, 0, benchChunk+128)
	out := make([]byte, 0, benchChunk+256)
	rec := make([]byte, 4096)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := uint64(i*benchChunk) % benchFile
		res, err := r.callInto(100003, 3, 7, ioArgs(args[:0], fh, off, benchChunk, data), out, rec)
		if err != nil {
			b.Fatalf("WRITE at %d: %v", off, err)
		}
		if len(res) < 4 || binary.BigEndian.Uint32(res) != 0 {
			b.Fatalf("WRITE at %d: reply %x", off, res)
		}
	}
}
