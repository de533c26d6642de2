package issuer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

func key(t *testing.T) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func request(t *testing.T, s *Service, id string, k nodekey.PrivateKey) (*httptest.ResponseRecorder, *http.Request) {
	body := []byte(`{}`)
	r := httptest.NewRequest("POST", api.PathStorageCredentials, bytes.NewReader(body))
	nodeauth.SignPeer(r, body, id, k, time.Now())
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w, r
}

func TestIssueAndRevoke(t *testing.T) {
	dir := t.TempDir()
	st, err := creds.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	s := &Service{Store: st, Buckets: []string{"mesh"}, Region: "us-east-1", Endpoint: "http://storage.mesh:9000",
		Reload: func() error { reloads++; return nil }}
	self, a, b := key(t), key(t), key(t)
	nm := &api.Netmap{Version: 1, Self: api.Node{ID: "nself", Name: "store", PublicKey: self.Public()},
		Peers: []api.Node{{ID: "na", Name: "a", PublicKey: a.Public()}, {ID: "nb", Name: "b", PublicKey: b.Public()}}}
	if err := s.ApplyNetmap(nm); err != nil {
		t.Fatal(err)
	}

	w, _ := request(t, s, "na", a)
	if w.Code != 200 {
		t.Fatalf("member a: status %d %s, want 200", w.Code, w.Body)
	}
	var got api.StorageCredentials
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.AccessKeyID == "" || len(got.SecretAccessKey) < 32 || got.Region != "us-east-1" || got.Endpoint != "http://storage.mesh:9000" {
		t.Fatalf("credentials = %+v", got)
	}
	if reloads != 1 {
		t.Errorf("reloads = %d after first issue, want 1", reloads)
	}
	w2, _ := request(t, s, "na", a)
	var again api.StorageCredentials
	_ = json.Unmarshal(w2.Body.Bytes(), &again)
	if again.AccessKeyID != got.AccessKeyID || again.SecretAccessKey != got.SecretAccessKey {
		t.Errorf("second request = %s, want the same key", again.AccessKeyID)
	}
	if reloads != 1 {
		t.Errorf("reloads = %d after repeat, want 1", reloads)
	}
	wb, _ := request(t, s, "nb", b)
	var bc api.StorageCredentials
	_ = json.Unmarshal(wb.Body.Bytes(), &bc)
	if bc.AccessKeyID == got.AccessKeyID || bc.SecretAccessKey == got.SecretAccessKey {
		t.Errorf("a and b got the same credentials")
	}

	// Refusals.
	if w, _ := request(t, s, "na", b); w.Code != http.StatusUnauthorized {
		t.Errorf("a's ID signed by b's key: status %d, want 401", w.Code)
	}
	if w, _ := request(t, s, "nx", key(t)); w.Code != http.StatusForbidden {
		t.Errorf("non-member: status %d, want 403", w.Code)
	}
	_, r := request(t, s, "na", a)
	r.Body = http.NoBody
	body := []byte(`{}`)
	r2 := httptest.NewRequest("POST", api.PathStorageCredentials, bytes.NewReader(body))
	r2.Header = r.Header.Clone()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r2)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("replayed request: status %d, want 401", rec.Code)
	}

	ids, err := os.ReadFile(filepath.Join(dir, creds.IdentitiesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ids), got.AccessKeyID) || !strings.Contains(string(ids), `"Write:mesh"`) {
		t.Fatalf("identities lack a's key or the mesh grant:\n%s", ids)
	}
	if fi, _ := os.Stat(filepath.Join(dir, creds.IdentitiesFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("identities mode %v, want 0600", fi.Mode().Perm())
	}

	// a leaves the mesh: revoked, reloaded, and refused from now on.
	nm2 := &api.Netmap{Version: 2, Self: nm.Self, Peers: nm.Peers[1:]}
	if err := s.ApplyNetmap(nm2); err != nil {
		t.Fatal(err)
	}
	ids, _ = os.ReadFile(filepath.Join(dir, creds.IdentitiesFile))
	if strings.Contains(string(ids), got.AccessKeyID) {
		t.Errorf("identities still hold removed node a's key")
	}
	if !strings.Contains(string(ids), bc.AccessKeyID) {
		t.Errorf("identities lost b's key")
	}
	if reloads != 3 {
		t.Errorf("reloads = %d after removal, want 3", reloads)
	}
	if w, _ := request(t, s, "na", a); w.Code != http.StatusForbidden {
		t.Errorf("removed node: status %d, want 403", w.Code)
	}

	// Credentials survive a restart of the service.
	st2, err := creds.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e := st2.Entries(); len(e) != 1 || e[0].AccessKey != bc.AccessKeyID {
		t.Errorf("reopened store = %+v, want b's entry", e)
	}
	if fi, _ := os.Stat(filepath.Join(dir, creds.StoreFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestRejoinWithNewKeyGetsNewCredentials(t *testing.T) {
	st, err := creds.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := key(t), key(t)
	e1, _, err := st.Issue("na", "a", k1.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e2, changed, err := st.Issue("na", "a", k2.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !changed || e2.AccessKey == e1.AccessKey || e2.Secret == e1.Secret {
		t.Errorf("new key kept the old credentials")
	}
}
