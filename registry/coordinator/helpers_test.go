package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// testCoord is a coordinator running on loopback for one test.
type testCoord struct {
	*coordinator.Coordinator
	dir   string
	admin *adminclient.Client
	hc    *http.Client
	stop  func()

	mu      sync.Mutex
	clients []*http.Client // node clients, closed before stopping
}

func testConfig(t *testing.T, dir string) coordinator.Config {
	t.Helper()
	cfg, err := coordinator.ParseConfig([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstun_listen: 127.0.0.1:0\ndata_dir: %s\nlog_level: debug\njoin_failure_burst: 1000\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs a coordinator on cfg until the test ends (or stop is called).
func start(t *testing.T, cfg coordinator.Config, opts coordinator.Options) *testCoord {
	t.Helper()
	c, err := coordinator.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("coordinator.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	tc := &testCoord{
		Coordinator: c,
		dir:         cfg.DataDir,
		admin:       adminclient.New(c.URL(), c.AdminCredential(), c.Pin()),
		hc:          regclient.NewHTTPClient(c.Pin()),
	}
	tc.stop = func() {
		once.Do(func() {
			// Idle HTTP/2 client connections would hold the server's
			// graceful shutdown for its GOAWAY timeout (1s).
			tc.admin.HTTP.CloseIdleConnections()
			tc.hc.CloseIdleConnections()
			tc.mu.Lock()
			for _, hc := range tc.clients {
				hc.CloseIdleConnections()
			}
			tc.mu.Unlock()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("coordinator.Run: %v", err)
			}
		})
	}
	t.Cleanup(tc.stop)
	return tc
}

func startDefault(t *testing.T) *testCoord {
	t.Helper()
	return start(t, testConfig(t, t.TempDir()), coordinator.Options{})
}

func (tc *testCoord) token(t *testing.T, req api.CreateTokenRequest) string {
	t.Helper()
	resp, err := tc.admin.CreateToken(context.Background(), req)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return resp.Token
}

// testNode is a joined node.
type testNode struct {
	key    nodekey.PrivateKey
	join   *api.JoinResponse
	client *regclient.Client
}

func newKey(t testing.TB) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (tc *testCoord) joinReq(ctx context.Context, token, name string, key nodekey.PrivateKey) (*api.JoinResponse, error) {
	return regclient.Join(ctx, tc.hc, tc.URL(), api.JoinRequest{Token: token, Name: name, PublicKey: key.Public()}, key)
}

func (tc *testCoord) join(t *testing.T, token, name string) *testNode {
	t.Helper()
	key := newKey(t)
	resp, err := tc.joinReq(context.Background(), token, name, key)
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return tc.nodeClient(t, key, resp)
}

func (tc *testCoord) nodeClient(t *testing.T, key nodekey.PrivateKey, resp *api.JoinResponse) *testNode {
	t.Helper()
	cred, err := nodeauth.ParseCredential(resp.Credential)
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	hc := regclient.NewHTTPClient(tc.Pin())
	tc.mu.Lock()
	tc.clients = append(tc.clients, hc)
	tc.mu.Unlock()
	return &testNode{key: key, join: resp, client: &regclient.Client{BaseURL: tc.URL(), HTTP: hc, Credential: cred, Key: key}}
}

// waitNetmap long-polls until fn accepts a netmap or the deadline passes.
func (n *testNode) waitNetmap(t *testing.T, since uint64, fn func(*api.Netmap) bool) *api.Netmap {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		nm, err := n.client.Netmap(ctx, since, 2*time.Second)
		switch {
		case errors.Is(err, regclient.ErrNotModified):
		case err != nil:
			t.Fatalf("netmap: %v", err)
		default:
			if fn(nm) {
				return nm
			}
			since = nm.Version
		}
		if ctx.Err() != nil {
			t.Fatalf("netmap: condition not met before the deadline")
		}
	}
}

func apiCode(err error) string {
	var ae *regclient.APIError
	if errors.As(err, &ae) {
		return ae.Body.Code
	}
	return ""
}

func apiStatus(err error) int {
	var ae *regclient.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func peerNames(nm *api.Netmap) map[string]api.Node {
	m := map[string]api.Node{}
	for _, p := range nm.Peers {
		m[p.Name] = p
	}
	return m
}
