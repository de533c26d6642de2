package server

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func record(words ...uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4*len(words))|1<<31)
	for _, w := range words {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

// TestRecordScanner: the prefixes of records come out whatever the chunks
// the stream arrives in.
func TestRecordScanner(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, n := range []int{0, 1, 6, 7, 40, 3} {
		w := make([]uint32, n)
		for j := range w {
			w[j] = uint32(i*100 + j)
		}
		r := record(w...)
		stream = append(stream, r...)
		want = append(want, r[4:4+min(28, len(r)-4)])
	}
	for chunk := 1; chunk <= len(stream); chunk++ {
		var got [][]byte
		s := recordScanner{onRecord: func(p []byte) { got = append(got, bytes.Clone(p)) }}
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			s.feed(p[:n])
			p = p[n:]
		}
		if len(got) != len(want) {
			t.Fatalf("chunks of %d: %d records, want %d", chunk, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("chunks of %d: record %d prefix %x, want %x", chunk, i, got[i], want[i])
			}
		}
	}
}

func TestTapAllocations(t *testing.T) {
	tp := newTap()
	req := record(1, 0, 2, 100003, 3, 6, 0, 0, 0, 0, 1, 2, 3)
	rep := record(1, 1, 0, 0, 0, 0, 0, 5)
	if n := testing.AllocsPerRun(100, func() { tp.in.feed(req); tp.out.feed(rep) }); n != 0 {
		t.Fatalf("a request and its reply through the tap: %v allocations, want 0", n)
	}
}

// TestOpsMetrics: operations over a real connection are counted by type
// and result, refusals included.
func TestOpsMetrics(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(op, result string) float64 { return testutil.ToFloat64(ops.WithLabelValues(op, result)) }
	mntOK, mntAcces := count("mount.mnt", "ok"), count("mount.mnt", "acces")
	writeOK, createROFS, export := count("nfs.write", "ok"), count("nfs.create", "rofs"), count("mount.export", "ok")
	in := testutil.ToFloat64(bytesIn)

	v := mustMount(t, f.listen(ipBuild1), "shared")
	writeFile(t, v, "w", []byte("hello"))
	ro := mustMount(t, f.listen(ipViewer), "shared")
	if _, err := ro.Create("x", 0o644); err == nil {
		t.Fatal("create through a read-only grant succeeded")
	}
	if _, err := mount(t, f.listen(ipPhone), "shared"); err == nil {
		t.Fatal("phone mounted")
	}
	if _, err := dialRaw(t, f.listen(ipBuild1)).exportList(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op, result string
		before     float64
		atLeast    float64
	}{
		{"mount.mnt", "ok", mntOK, 2},
		{"mount.mnt", "acces", mntAcces, 1},
		{"nfs.write", "ok", writeOK, 1},
		{"nfs.create", "rofs", createROFS, 1},
		{"mount.export", "ok", export, 1},
	} {
		if got := count(c.op, c.result) - c.before; got < c.atLeast {
			t.Errorf("tunnelmesh_nfsd_ops_total{op=%q,result=%q} grew by %v, want at least %v", c.op, c.result, got, c.atLeast)
		}
	}
	if testutil.ToFloat64(bytesIn) <= in {
		t.Error("tunnelmesh_nfsd_bytes_total{direction=\"in\"} did not grow")
	}
}

// FuzzTap: any bytes in either direction are counted without a panic.
func FuzzTap(f *testing.F) {
	f.Add(record(1, 0, 2, 100003, 3, 7, 0, 0), record(1, 1, 0, 0, 0, 0, 0, 30))
	f.Add([]byte{0x80, 0, 0, 0}, []byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in, out []byte) {
		tp := newTap()
		tp.in.feed(in)
		tp.out.feed(out)
		tp.out.feed(out)
	})
}
