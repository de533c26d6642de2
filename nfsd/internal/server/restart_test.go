package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestTwoClientsWriteAtOnce: two clients (two connections, two mounts)
// write different files at the same time; both arrive whole.
func TestTwoClientsWriteAtOnce(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	want := map[string][]byte{}
	for i := range 2 {
		name := fmt.Sprintf("client%d.bin", i)
		data := make([]byte, 3<<20+i)
		rand.Read(data)
		want[name] = data
		v := mustMount(t, f.listen(ipBuild1), "shared")
		wg.Add(1)
		go func() {
			defer wg.Done()
			fl, err := v.OpenFile(name, 0o644)
			if err != nil {
				t.Errorf("open %s: %v", name, err)
				return
			}
			if _, err := fl.Write(data); err != nil {
				t.Errorf("write %s: %v", name, err)
			}
			fl.Close()
		}()
	}
	wg.Wait()
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(f.shared, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s on disk: %d bytes (%v), want the %d written", name, len(got), err, len(data))
		}
	}
}

// TestRestartMidCopy: nfsd stops and starts again on the same address while
// a client is writing a file; the client reconnects and retries, and the
// file arrives whole, nothing lost or written twice.
func TestRestartMidCopy(t *testing.T) {
	f := newFixture(t)
	addr := f.listen(ipBuild1)
	v := mustMount(t, addr, "shared")
	data := make([]byte, 24<<20)
	rand.Read(data)
	fl, err := v.OpenFile("big.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := fl.Write(data)
		if err == nil {
			err = fl.Close()
		}
		done <- err
	}()
	path := filepath.Join(f.shared, "big.bin")
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := os.Stat(path)
		if err == nil && st.Size() >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the copy never got 4 MiB in")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.stop()
	st, _ := os.Stat(path)
	f.start()
	f.listenAt(ipBuild1, addr)
	t.Logf("restarted nfsd with %d of %d bytes written", st.Size(), len(data))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("copy across the restart: %v", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("copy never finished after the restart")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(data) || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("after the restart: %d bytes on disk, want %d, sha256 equal: %v", len(got), len(data), sha256.Sum256(got) == sha256.Sum256(data))
	}
}
