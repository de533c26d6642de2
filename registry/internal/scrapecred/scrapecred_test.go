package scrapecred

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCreateCheckRevokePersist(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, info, err := s.Create("prometheus", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Check(tok, now) {
		t.Fatal("Check(new token) = false, want true")
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	secret := tok[strings.LastIndex(tok, ".")+1:]
	if strings.Contains(string(b), secret) {
		t.Fatal("the file holds the secret, want only its hash")
	}
	if st, _ := os.Stat(filepath.Join(dir, FileName)); st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	// Reopened from the file.
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Check(tok, now) {
		t.Fatal("Check after reopening = false, want true")
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"no prefix":      strings.TrimPrefix(tok, prefix),
		"wrong secret":   tok[:len(tok)-2] + "xx",
		"unknown id":     prefix + "0000000000000000." + secret,
		"admin-like":     "tma1." + secret,
		"secret only":    secret,
		"id without sec": prefix + info.ID,
	} {
		if s2.Check(bad, now) {
			t.Errorf("Check(%s) = true, want false", name)
		}
	}
	if s2.Check(tok, now.Add(time.Hour)) {
		t.Error("Check(expired) = true, want false")
	}
	if got := s2.List(); len(got) != 1 || got[0] != info {
		t.Errorf("List() = %+v, want [%+v]", got, info)
	}
	if err := s2.Revoke(info.ID); err != nil {
		t.Fatal(err)
	}
	if s2.Check(tok, now) {
		t.Error("Check(revoked) = true, want false")
	}
	if err := s2.Revoke(info.ID); err != ErrNotFound {
		t.Errorf("Revoke twice = %v, want ErrNotFound", err)
	}
	s3, _ := Open(dir)
	if s3.Check(tok, now) {
		t.Error("revocation not persisted")
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	s, _ := Open(t.TempDir())
	if _, _, err := s.Create(strings.Repeat("x", 65), 0, time.Now()); err == nil {
		t.Error("Create(65-char name) succeeded")
	}
	if _, _, err := s.Create("a\nb", 0, time.Now()); err == nil {
		t.Error("Create(name with newline) succeeded")
	}
	if _, _, err := s.Create("x", -time.Second, time.Now()); err == nil {
		t.Error("Create(negative expiry) succeeded")
	}
	if len(s.List()) != 0 {
		t.Error("a refused Create stored a token")
	}
}

func TestOpenRefusesCorruptFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte(`[{"id":"x"}]`), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "[0]") {
		t.Errorf("Open(entry without hash) = %v, want an error naming [0]", err)
	}
}

func TestCollectorExportsExpiries(t *testing.T) {
	s, _ := Open(t.TempDir())
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	_, info, _ := s.Create("prom", 48*time.Hour, now)
	s.Create("forever", 0, now)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("Gather() = %v, want one series (the token with an expiry)", mfs)
	}
	m := mfs[0].GetMetric()[0]
	if mfs[0].GetName() != "tunnelmesh_registry_scrape_token_expiry_timestamp_seconds" || m.GetGauge().GetValue() != float64(info.ExpiresAt.Unix()) {
		t.Errorf("series %s = %v, want %d", mfs[0].GetName(), m.GetGauge().GetValue(), info.ExpiresAt.Unix())
	}
}
