package replaylog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	now := time.Unix(1_800_000_000, 0)
	l, err := Open(path, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Add([]byte("sig-1"), now) || l.Add([]byte("sig-1"), now) {
		t.Fatal("Add: want new, then seen")
	}
	l.Add([]byte("sig-old"), now.Add(-Window-time.Second))
	l.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode = %v, %v; want 0600", fi, err)
	}

	l2, err := Open(path, now.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Add([]byte("sig-1"), now.Add(time.Minute)) {
		t.Fatal("signature accepted before the reopen is new again after it")
	}
	if l2.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the expired one dropped)", l2.Len())
	}
	// Past the window it is forgotten, and the file shrinks on rewrite.
	later := now.Add(Window + 2*time.Minute)
	if !l2.Add([]byte("sig-1"), later) {
		t.Fatal("signature still refused past the window")
	}
	if fi, _ := os.Stat(path); fi.Size() != recordSize {
		t.Fatalf("file size after compaction = %d, want one record", fi.Size())
	}
}

func TestTornRecordIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	now := time.Unix(1_800_000_000, 0)
	l, err := Open(path, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Add([]byte("a"), now)
	l.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 2, 3})
	f.Close()
	l2, err := Open(path, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Add([]byte("a"), now) || l2.Len() != 1 {
		t.Fatalf("after a torn tail: Len %d", l2.Len())
	}
}

// BenchmarkAdd measures one accepted signature (map insert and append).
func BenchmarkAdd(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), FileName), time.Now(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	sig := make([]byte, 64)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sig[0], sig[1], sig[2], sig[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		l.Add(sig, now)
	}
}
