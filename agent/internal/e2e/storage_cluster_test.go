package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

// TestStorageCluster is issue 14's distributed lab: a coordinator with the
// default policy; three storage nodes (sta, stb, stc: tagged storage,
// --advertise-storage, tunnelmesh-storage with a cluster section naming all
// three and one secret) forming one SeaweedFS cluster over the mesh
// (replication 001); a client node. Credentials issued by one storage node
// are the ones every node issues and accepts; an object put through one
// node's S3 reads back through the others; the raft leader's storage
// service is killed during a stream of puts through another node: the
// stream goes on (its failed attempts are counted), every acknowledged
// object reads back intact through the third node, and once the killed
// node is back, the objects written while it was away read back through
// it; the client's key is refused on every node soon after the client is
// removed from the mesh; nothing listens on an underlay address.
func TestStorageCluster(t *testing.T) {
	weed := weedBinary(t)
	l := newLab(t)
	storageBin, s3tool := buildStorage(t)

	cns := l.addHost("c", 1)
	names := []string{"sta", "stb", "stc"}
	nss := map[string]string{}
	for i, h := range append(names, "client") {
		nss[h] = l.addHost(h, 21+i)
	}
	cfgPath := l.defaultPolicyCoordinator(cns, "coord-stc", coordIP, "debug")
	tok := l.adminToken(cns, cfgPath)
	stTok := l.adminToken(cns, cfgPath, "--tag", "storage")

	secret := filepath.Join(l.Dir(), "cluster.secret")
	if err := os.WriteFile(secret, []byte("c2VjcmV0IG9mIHRoZSBzdG9yYWdlIGNsdXN0ZXIgbGFiIDEyMzQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	cfgs := map[string]string{}
	procs := map[string]*netnslab.Proc{}
	for _, n := range names {
		st := l.join(nss[n], n, n, "", coordURL, stTok, "--advertise-storage", "--dns=false")
		ips[n] = l.waitStatus(st, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
		cfgs[n] = filepath.Join(l.Dir(), "storage-"+n+".yaml")
		doc := fmt.Sprintf("credentials: %s\ndata_dir: %s\nweed:\n  binary: %s\n  volume_max: 24\n  volume_size_mb: 64\n"+
			"cluster:\n  peers: [sta, stb, stc]\n  replication: \"001\"\n  secret_file: %s\n",
			filepath.Join(st.stateDir, "credentials.json"), filepath.Join(l.Dir(), "storage-data-"+n), weed, secret)
		if err := os.WriteFile(cfgs[n], []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := func(n string) {
		procs[n] = l.Start(nss[n], "tunnelmesh-storage-"+n, storageBin, "--config", cfgs[n], "--log-level", "debug")
	}
	for _, n := range names {
		start(n)
	}
	client := l.join(nss["client"], "client", "client", "", coordURL, tok, "--dns=false")
	l.waitStatus(client, 30*time.Second, "sees the storage nodes", func(s localapi.Status) bool {
		p := peerNames(s)
		return slicesContains(p, "sta") && slicesContains(p, "stb") && slicesContains(p, "stc")
	})

	// The client's credentials, asked of one storage node's credentials API.
	credsFrom := func(server string) s3creds {
		t.Helper()
		var c s3creds
		var last string
		deadline := time.Now().Add(5 * time.Minute) // first start of three SeaweedFS on a busy machine
		for time.Now().Before(deadline) {
			for n, p := range procs {
				if p.Exited() {
					t.Fatalf("tunnelmesh-storage on %s exited: %v", n, p.Err())
				}
			}
			out, err := l.Run(client.ns, 60*time.Second, l.bin, "storage", "credentials", "--json", "--state-dir", client.stateDir,
				"--server", ips[server]+":9001")
			if err == nil && json.Unmarshal([]byte(out), &c) == nil && c.ID != "" {
				return c
			}
			last = fmt.Sprintf("%q %v", out, err)
			time.Sleep(time.Second)
		}
		t.Fatalf("storage credentials from %s: %s", server, last)
		return c
	}
	s3in := func(ns string, c s3creds, node string, args ...string) (string, error) {
		cmd := append([]string{"env", "AWS_ACCESS_KEY_ID=" + c.ID, "AWS_SECRET_ACCESS_KEY=" + c.Secret, "AWS_REGION=" + c.Region,
			s3tool, ips[node] + ":9000"}, args...)
		out, err := l.Run(ns, 3*time.Minute, cmd...)
		if err != nil {
			err = errors.New(strings.ReplaceAll(err.Error(), c.Secret, "<secret>"))
		}
		return strings.TrimSpace(out), err
	}
	s3 := func(c s3creds, node string, args ...string) (string, error) { return s3in(client.ns, c, node, args...) }

	cr := credsFrom("sta")
	for _, n := range []string{"stb", "stc"} {
		if got := credsFrom(n); got != cr {
			t.Fatalf("credentials from %s differ from sta's (access keys %s, %s): every cluster node derives the same", n, got.ID, cr.ID)
		}
	}

	t.Run("put through one node, get through the others", func(t *testing.T) {
		var sum string
		waitFor(t, 3*time.Minute, "put through sta", func() (bool, string) {
			out, err := s3(cr, "sta", "put", "mesh", "first.bin", fmt.Sprint(2<<20+3))
			sum = out
			return err == nil && len(out) == 64, fmt.Sprintf("%q %v", out, err)
		})
		for _, n := range []string{"stb", "stc"} {
			waitFor(t, time.Minute, "get through "+n, func() (bool, string) {
				got, err := s3(cr, n, "get", "mesh", "first.bin")
				return err == nil && got == sum, fmt.Sprintf("%q %v, want %s", got, err, sum)
			})
		}
		sum2, err := s3(cr, "stc", "multipart", "mesh", "multi.bin", fmt.Sprint(11<<20+1))
		if err != nil || len(sum2) != 64 {
			t.Fatalf("multipart put through stc = %q, %v", sum2, err)
		}
		if got, err := s3(cr, "stb", "get", "mesh", "multi.bin"); err != nil || got != sum2 {
			t.Errorf("get through stb = %q, %v; want %s", got, err, sum2)
		}
	})

	t.Run("nothing on the underlay", func(t *testing.T) {
		for _, n := range names {
			out, err := l.Run(nss[n], 10*time.Second, "ss", "-ltnH")
			if err != nil {
				t.Fatalf("ss in %s: %v", n, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				if len(f) < 4 {
					continue
				}
				if local := f[3]; !strings.HasPrefix(local, "127.0.0.1:") && !strings.HasPrefix(local, ips[n]+":") {
					t.Errorf("%s listens on %s (want loopback or its mesh address %s only)", n, local, ips[n])
				}
			}
		}
		// The client may use S3 but not the cluster's internal ports.
		for _, port := range []string{"9333", "8080", "8888"} {
			if out, err := l.Run(client.ns, 10*time.Second, "bash", "-c", "exec 3<>/dev/tcp/"+ips["sta"]+"/"+port); err == nil {
				t.Errorf("client connected to sta's SeaweedFS port %s over the mesh: %s", port, out)
			}
		}
	})

	// The raft leader is the node to lose: the cluster must elect another.
	var leader string
	waitFor(t, 2*time.Minute, "a raft leader", func() (bool, string) {
		out, err := l.Run(nss["sta"], 30*time.Second, s3tool, "-", "cat", "http://"+ips["sta"]+":9333/cluster/status")
		var st struct{ Leader string }
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false, fmt.Sprintf("%q %v", out, err)
		}
		for _, n := range names {
			if strings.HasPrefix(st.Leader, ips[n]+":") {
				leader = n
			}
		}
		return leader != "", out
	})
	var writer, reader string // the other two: writes go through one, reads through the other
	for _, n := range names {
		switch {
		case n == leader:
		case writer == "":
			writer = n
		default:
			reader = n
		}
	}
	t.Logf("raft leader %s (to be killed); stream through %s; reads through %s", leader, writer, reader)

	outPath := filepath.Join(l.Dir(), "stream.out")
	stopPath := filepath.Join(l.Dir(), "stream.stop")
	stream := l.Start(client.ns, "s3tool-stream", "env", "AWS_ACCESS_KEY_ID="+cr.ID, "AWS_SECRET_ACCESS_KEY="+cr.Secret, "AWS_REGION="+cr.Region,
		s3tool, ips[writer]+":9000", "stream", "mesh", "stream/", fmt.Sprint(96<<10), outPath, stopPath)
	type result struct {
		acked map[int]string // object number to sha256
		fails []string
	}
	read := func() result {
		r := result{acked: map[int]string{}}
		f, err := os.Open(outPath)
		if err != nil {
			return r
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var i int
			var sum string
			if _, err := fmt.Sscanf(sc.Text(), "ok %d %s", &i, &sum); err == nil {
				r.acked[i] = sum
			} else if strings.HasPrefix(sc.Text(), "fail ") {
				r.fails = append(r.fails, sc.Text())
			}
		}
		return r
	}
	waitAcked := func(n int, what string) {
		t.Helper()
		waitFor(t, 5*time.Minute, what, func() (bool, string) {
			if stream.Exited() {
				t.Fatalf("put stream exited: %v; %d acknowledged, failures %q", stream.Err(), len(read().acked), read().fails)
			}
			r := read()
			return len(r.acked) >= n, fmt.Sprintf("%d acknowledged, %d failed attempts", len(r.acked), len(r.fails))
		})
	}
	waitAcked(20, "20 puts before the kill")
	before := read()
	// Replication 001: every volume of bucket mesh is on exactly two nodes,
	// and the node to be killed holds some (so the reads below through
	// the third node need the copies).
	copies := map[string][]string{} // volume file to the nodes holding it
	for _, n := range names {
		files, _ := filepath.Glob(filepath.Join(l.Dir(), "storage-data-"+n, "weed", "data", "mesh_*.dat"))
		for _, f := range files {
			copies[filepath.Base(f)] = append(copies[filepath.Base(f)], n)
		}
	}
	onLeader := 0
	for v, on := range copies {
		if len(on) != 2 {
			t.Errorf("volume %s on %v, want 2 nodes (replication 001)", v, on)
		}
		if slicesContains(on, leader) {
			onLeader++
		}
	}
	if len(copies) == 0 || onLeader == 0 {
		t.Fatalf("volumes of bucket mesh: %v; want some on %s", copies, leader)
	}
	t.Logf("%d volumes of bucket mesh, each on 2 nodes; %d on %s", len(copies), onLeader, leader)
	killedAt := time.Now()
	if err := procs[leader].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[leader].Done()
	t.Logf("killed %s's storage service (SIGKILL; weed dies with it) after %d acknowledged puts", leader, len(before.acked))
	waitAcked(len(before.acked)+40, "40 more puts with one node down")
	if err := os.WriteFile(stopPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stream.Done():
		if err := stream.Err(); err != nil {
			t.Fatalf("put stream: %v (a put abandoned after 3 minutes of failures)", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("put stream did not stop")
	}
	res := read()
	t.Logf("put stream: %d acknowledged (%d after the kill, %v after it), %d failed attempts retried", len(res.acked),
		len(res.acked)-len(before.acked), time.Since(killedAt).Round(time.Second), len(res.fails))
	for _, f := range res.fails {
		t.Logf("  %s", f)
	}

	// Every acknowledged object reads back intact through the third node.
	checkAll := func(node string, keys map[int]string) {
		t.Helper()
		for i, sum := range keys {
			got, err := s3(cr, node, "get", "mesh", fmt.Sprintf("stream/%d", i))
			if err != nil || got != sum {
				t.Errorf("stream/%d through %s = %q, %v; want %s", i, node, got, err, sum)
			}
		}
	}
	checkAll(reader, res.acked)
	if got, err := s3(cr, reader, "get", "mesh", "multi.bin"); err != nil || len(got) != 64 {
		t.Errorf("multi.bin through %s with %s down = %q, %v", reader, leader, got, err)
	}

	// The killed node returns and catches up: what was written while it
	// was away reads back through it.
	start(leader)
	away := map[int]string{}
	last := -1
	for i, sum := range res.acked {
		if _, ok := before.acked[i]; !ok {
			away[i] = sum
			last = max(last, i)
		}
	}
	returned := time.Now()
	waitFor(t, 5*time.Minute, leader+" serves the last object written while it was away", func() (bool, string) {
		if procs[leader].Exited() {
			t.Fatalf("tunnelmesh-storage on %s exited after restart: %v", leader, procs[leader].Err())
		}
		got, err := s3(cr, leader, "get", "mesh", fmt.Sprintf("stream/%d", last))
		return err == nil && got == away[last], fmt.Sprintf("%q %v", got, err)
	})
	t.Logf("%s serves objects written while it was away %v after its restart", leader, time.Since(returned).Round(time.Second))
	checkAll(leader, away)
	sum, err := s3(cr, leader, "put", "mesh", "after.bin", "300000")
	if err != nil || len(sum) != 64 {
		t.Fatalf("put through the returned %s = %q, %v", leader, sum, err)
	}
	if got, err := s3(cr, writer, "get", "mesh", "after.bin"); err != nil || got != sum {
		t.Errorf("get through %s of what %s took = %q, %v; want %s", writer, leader, got, err, sum)
	}

	t.Run("removed node is refused on every storage node", func(t *testing.T) {
		// Used from a storage node's namespace: the client is gone.
		removed := time.Now()
		l.Must("ip", "netns", "exec", cns, l.bin, "admin", "--config", cfgPath, "nodes", "remove", "client")
		for _, n := range names {
			waitFor(t, 30*time.Second, "client's key refused by "+n, func() (bool, string) {
				out, err := s3in(nss[writer], cr, n, "get", "mesh", "first.bin")
				return err != nil && strings.Contains(out, " 403"), fmt.Sprintf("%q %v", out, err)
			})
			t.Logf("client's key refused by %s %v after its removal (issue target: within 2 s)", n, time.Since(removed).Round(time.Millisecond))
		}
	})

	for _, n := range names {
		if err := procs[n].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		select {
		case <-procs[n].Done():
			if err := procs[n].Err(); err != nil {
				t.Errorf("tunnelmesh-storage on %s exit after SIGTERM: %v", n, err)
			}
		case <-time.After(2 * time.Minute):
			t.Errorf("tunnelmesh-storage on %s did not stop within 2 minutes of SIGTERM", n)
		}
	}
}
