package enginetest

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/engine"
)

var record = flag.Bool("record", false, "record testdata/stream.json from the local Docker engine")

// recordPrefix names every container and network the recorder makes.
const recordPrefix = "dwrec-"

// TestRecordStream records the engine's events and container lists while it
// runs a script of container lifecycles into testdata/stream.json:
//
//	go test ./internal/enginetest -run TestRecordStream -record
func TestRecordStream(t *testing.T) {
	if !*record {
		t.Skip("records testdata/stream.json only with -record")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := BuildImage(ctx); err != nil {
		t.Fatal(err)
	}
	cli, err := engine.New("unix:///var/run/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	net := recordPrefix + "net"
	names := []string{"web", "plain", "hostnet", "pub", "site"}
	cleanup := func() {
		for _, n := range names {
			exec.Command("docker", "rm", "-f", recordPrefix+n).Run()
		}
		exec.Command("docker", "network", "rm", net).Run()
	}
	cleanup()
	t.Cleanup(cleanup)
	docker(t, "network", "create", "--driver", "bridge", net)

	ours := func(m events.Message) bool {
		return strings.HasPrefix(m.Actor.Attributes["name"], recordPrefix)
	}
	list := func() []container.Summary {
		l, err := cli.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(l, func(c container.Summary) bool {
			return len(c.Names) == 0 || !strings.HasPrefix(strings.TrimPrefix(c.Names[0], "/"), recordPrefix)
		})
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	msgs, errs := cli.Events(sctx)
	rec := Recording{Initial: list()}
	if v, err := exec.Command("docker", "version", "--format", "{{.Server.Version}} API {{.Server.APIVersion}}").Output(); err == nil {
		rec.Engine = strings.TrimSpace(string(v))
	}
	img := Image
	script := [][]string{
		{"run", "-d", "--name", recordPrefix + "web", "--network", net, "-e", "NAME=web",
			"--label", "tunnelmesh.expose=8080/tcp,5353/udp", "--label", "tunnelmesh.allow=tag:web,group:devs", img},
		{"run", "-d", "--name", recordPrefix + "plain", "--network", net, "-e", "NAME=plain", img},
		{"run", "-d", "--name", recordPrefix + "hostnet", "--network", "host", "-e", "NAME=hostnet",
			"-e", "HTTP_ADDR=127.0.0.1:0", "-e", "UDP_ADDR=127.0.0.1:0", "--label", "tunnelmesh.expose=8080/tcp", img},
		{"run", "-d", "--name", recordPrefix + "pub", "--network", net, "-e", "NAME=pub", "-p", "127.0.0.1::8080/tcp", img},
		{"pause", recordPrefix + "web"},
		{"unpause", recordPrefix + "web"},
		{"stop", "-t", "1", recordPrefix + "web"},
		{"start", recordPrefix + "web"},
		{"kill", recordPrefix + "pub"},
		{"rm", "-f", recordPrefix + "web"},
		{"run", "-d", "--name", recordPrefix + "web", "--network", net, "-e", "NAME=web",
			"--label", "tunnelmesh.expose=8080/tcp", "--label", "tunnelmesh.name=site", img},
		{"rm", "-f", recordPrefix + "hostnet", recordPrefix + "plain", recordPrefix + "pub"},
		{"rm", "-f", recordPrefix + "web"},
	}
	for _, args := range script {
		docker(t, args...)
		st := Step{Action: "docker " + strings.Join(args, " ")}
		quiet := time.NewTimer(time.Second)
	collect:
		for {
			select {
			case m := <-msgs:
				if ours(m) {
					st.Events = append(st.Events, m)
				}
				quiet.Reset(700 * time.Millisecond)
			case err := <-errs:
				t.Fatalf("event stream: %v", err)
			case <-quiet.C:
				break collect
			}
		}
		st.List = list()
		rec.Steps = append(rec.Steps, st)
		t.Logf("%s: %d events, %d containers", st.Action, len(st.Events), len(st.List))
	}
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "stream.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func docker(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
