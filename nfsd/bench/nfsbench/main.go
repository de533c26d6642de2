// Command nfsbench is bench.sh's NFS client: go-nfs-client, one mount, one
// request in flight at a time unless -inflight says more (then READs and
// WRITEs of different 1 MiB chunks are pipelined on the one connection, as
// the kernel client's read-ahead and write-behind do). Each run does one
// workload and prints its wall time in seconds (mount excluded):
//
//	nfsbench -addr IP:2049 write -size BYTES   sequential write of seq.bin in 1 MiB WRITEs (FILE_SYNC), then COMMIT
//	nfsbench -addr IP:2049 read -size BYTES    sequential read of seq.bin in 1 MiB READs, length checked
//	nfsbench -addr IP:2049 meta -files N       in a new directory: N files created and written (100 bytes each),
//	                                           listed (READDIRPLUS, count checked), removed, directory removed
//
// NFS and MOUNT are both dialled at -addr (tunnelmesh-nfsd serves them on one port).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

const chunk = 1 << 20

func main() {
	addr := flag.String("addr", "", "IP:PORT of NFS and MOUNT")
	export := flag.String("export", "shared", "export to mount")
	size := flag.Int64("size", 64<<20, "bytes for write and read")
	files := flag.Int("files", 10000, "files for meta")
	inflight := flag.Int("inflight", 1, "READs or WRITEs in flight at once (write and read)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: nfsbench -addr IP:PORT [-export NAME] [-size BYTES] [-files N] [-inflight N] write|read|meta")
		flag.PrintDefaults()
	}
	flag.Parse()
	// go-nfs-client allocates every reply afresh; like the servers
	// (server.TuneGC), the client collects less often, so that less of the
	// two CPUs goes to it and more to the path measured.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if *addr == "" || flag.NArg() != 1 || *inflight < 1 {
		flag.Usage()
		os.Exit(2)
	}
	secs, err := run(*addr, *export, flag.Arg(0), *size, *files, *inflight)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfsbench %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	fmt.Printf("%.3f\n", secs)
}

func run(addr, export, mode string, size int64, files, inflight int) (float64, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	m := &nfsc.Mount{Client: c}
	v, err := m.Mount("/"+export, rpc.NewAuthUnix("nfsbench", 0, 0).Auth())
	if err != nil {
		return 0, fmt.Errorf("mount %s: %w", export, err)
	}
	start := time.Now()
	switch mode {
	case "write":
		err = write(v, size, inflight)
	case "read":
		err = read(v, size, inflight)
	case "meta":
		err = meta(v, files)
	default:
		return 0, fmt.Errorf("unknown workload %q (want write, read or meta)", mode)
	}
	return time.Since(start).Seconds(), err
}

// dial retries when go-nfs-client's random local port is taken.
func dial(addr string) (*rpc.Client, error) {
	for i := 0; ; i++ {
		c, err := rpc.DialTCP("tcp", addr, false)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || i == 20 {
			return c, err
		}
	}
}

// chunks runs fn for every chunk offset below size on inflight goroutines,
// each taking the next chunk, and returns the first error.
func chunks(size int64, inflight int, fn func(worker int, off int64) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, inflight)
	for w := range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				off := next.Add(chunk) - chunk
				if off >= size || errs[w] != nil {
					return
				}
				errs[w] = fn(w, off)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func write(v *nfsc.Target, size int64, inflight int) error {
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i*7 + i>>11)
	}
	_ = v.Remove("seq.bin")
	f, err := v.OpenFile("seq.bin", 0o644)
	if err != nil {
		return fmt.Errorf("create seq.bin: %w", err)
	}
	// One File per worker: a File's Write writes at its own offset.
	fs := []*nfsc.File{f}
	for len(fs) < inflight {
		g, err := v.OpenFile("seq.bin", 0o644)
		if err != nil {
			return fmt.Errorf("open seq.bin: %w", err)
		}
		fs = append(fs, g)
	}
	err = chunks(size, inflight, func(w int, off int64) error {
		n := min(int64(chunk), size-off)
		if _, err := fs[w].Seek(off, io.SeekStart); err != nil {
			return err
		}
		if _, err := fs[w].Write(buf[:n]); err != nil {
			return fmt.Errorf("write seq.bin at %d: %w", off, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("commit seq.bin: %w", err)
	}
	return nil
}

func read(v *nfsc.Target, size int64, inflight int) error {
	f, err := v.Open("seq.bin")
	if err != nil {
		return fmt.Errorf("open seq.bin: %w", err)
	}
	if inflight > 1 {
		return readAt(f, size, inflight)
	}
	buf := make([]byte, chunk)
	var got int64
	for {
		n, err := f.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read seq.bin at %d: %w", got, err)
		}
		if n == 0 {
			return fmt.Errorf("read seq.bin at %d: no data and no EOF", got)
		}
	}
	if got != size {
		return fmt.Errorf("read seq.bin: %d bytes, want %d", got, size)
	}
	return nil
}

// readAt reads seq.bin in 1 MiB chunks with inflight READs at once.
func readAt(f *nfsc.File, size int64, inflight int) error {
	bufs := make([][]byte, inflight)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
	}
	var got atomic.Int64
	err := chunks(size, inflight, func(w int, off int64) error {
		want := min(int64(chunk), size-off)
		for done := int64(0); done < want; {
			n, err := f.ReadAt(bufs[w][done:want], off+done)
			done += int64(n)
			got.Add(int64(n))
			if err == io.EOF && done < want {
				return fmt.Errorf("read seq.bin at %d: EOF before %d bytes", off, size)
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("read seq.bin at %d: %w", off+done, err)
			}
			if n == 0 && err == nil {
				return fmt.Errorf("read seq.bin at %d: no data and no EOF", off+done)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if got.Load() != size {
		return fmt.Errorf("read seq.bin: %d bytes, want %d", got.Load(), size)
	}
	return nil
}

func meta(v *nfsc.Target, files int) error {
	dir := fmt.Sprintf("meta-%d", os.Getpid())
	if _, err := v.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	body := []byte(strings.Repeat("x", 99) + "\n")
	for i := 0; i < files; i++ {
		p := fmt.Sprintf("%s/f%05d", dir, i)
		f, err := v.OpenFile(p, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if _, err := f.Write(body); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("commit %s: %w", p, err)
		}
	}
	ents, err := v.ReadDirPlus(dir)
	if err != nil {
		return fmt.Errorf("readdir %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if e.FileName != "." && e.FileName != ".." {
			n++
		}
	}
	if n != files {
		return fmt.Errorf("readdir %s: %d entries, want %d", dir, n, files)
	}
	for i := 0; i < files; i++ {
		p := fmt.Sprintf("%s/f%05d", dir, i)
		if err := v.Remove(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	if err := v.RmDir(dir); err != nil {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}
