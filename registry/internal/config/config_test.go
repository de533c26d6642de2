package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "{}"} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q) = %v, want defaults", in, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("Parse(%q) = %+v, want %+v", in, c, Default())
		}
	}
	d := Default()
	if d.Listen != ":8443" || d.STUNListen != ":3478" || d.MeshCIDR != "100.64.0.0/10" || d.DNSZone != "mesh" ||
		time.Duration(d.TokenDefaultExpiry) != 24*time.Hour || d.DataDir != DefaultDataDir {
		t.Fatalf("Default() = %+v", d)
	}
}

func TestExampleConfigParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "coordinator.example.yaml"))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("example config = %+v, want the defaults it documents %+v", c, Default())
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte("listen: 127.0.0.1:9443\nmesh_cidr: 10.20.0.0/16\ntoken_default_expiry: 1h30m\ndns_zone: Corp.Mesh.\nstun_listen: \"off\"\n" +
		"tls_cert: /c.pem\ntls_key: /k.pem\npublic_url: https://coord.example.com:9443\nlog_format: json\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9443" || c.Prefix().String() != "10.20.0.0/16" || time.Duration(c.TokenDefaultExpiry) != 90*time.Minute ||
		c.DNSZone != "corp.mesh" || c.STUNListen != "off" || c.LogFormat != "json" {
		t.Fatalf("Parse = %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"unknown key", "listen: :1\nlistn: :2\n", `line 2: unknown key "listn"`},
		{"bad listen", "listen: nope\n", `listen: "nope": want host:port or :port`},
		{"bad port", "listen: \":99999\"\n", `listen: ":99999": bad port "99999"`},
		{"bad stun", "stun_listen: x\n", `stun_listen: "x": want host:port or :port`},
		{"bad cidr", "mesh_cidr: 10.0.0.1/8\n", `mesh_cidr: mesh cidr 10.0.0.1/8: host bits set (did you mean 10.0.0.0/8?)`},
		{"ipv6 cidr", "mesh_cidr: fd00::/64\n", `mesh_cidr: mesh cidr fd00::/64: must be an IPv4 prefix`},
		{"bad duration", "token_default_expiry: soon\n", `want a duration like "24h": "soon"`},
		{"token expiry overflow", "token_default_expiry: 2562047h\n", `token_default_expiry: 2562047h0m0s is longer than the maximum 87600h0m0s (10 years)`},
		{"short body timeout", "request_body_timeout: 10ms\n", `request_body_timeout: must be between 1s and 5m0s`},
		{"negative conns", "max_conns_per_source: -1\n", `max_conns_per_source: must not be negative`},
		{"short online timeout", "online_timeout: 1s\n", `online_timeout: must be at least 5s`},
		{"short replica expiry", "replica_expiry: 1s\n", `replica_expiry: must be at least 2s`},
		{"short psk overlap", "psk_rotation_overlap: 10s\n", `psk_rotation_overlap: 10s: must be from 30s to 24h0m0s`},
		{"long psk overlap", "psk_rotation_overlap: 48h\n", `psk_rotation_overlap: 48h0m0s: must be from 30s to 24h0m0s`},
		{"cert without key", "tls_cert: /c.pem\n", `tls_cert, tls_key: set both or neither`},
		{"bad zone", "dns_zone: bad_zone\n", `dns_zone: "bad_zone"`},
		{"bad level", "log_level: loud\n", `log_level: "loud": want debug, info, warn or error`},
		{"bad format", "log_format: xml\n", `log_format: "xml": want text or json`},
		{"http public url", "public_url: http://x\n", `public_url: "http://x": want https://host[:port]`},
		{"wrong type", "join_failure_burst: many\n", "cannot unmarshal"},
		{"negative", "join_failure_burst: -1\n", "join_failure_burst: must not be negative"},
		{"two documents", "listen: :1\n---\nlisten: :2\n", "more than one YAML document"},
		{"not a map", "- a\n- b\n", "cannot unmarshal"},
		{"syntax", "listen: [\n", "parse config"},
		{"bad relay id", "relay:\n  id: \"a b\"\n", `relay.id: "a b": only letters, digits`},
		{"bad relay url", "relay:\n  public_url: https://x/relay\n", `relay.public_url: "https://x/relay": want wss://`},
		{"extra without url", "relay:\n  extra:\n    - id: eu\n", `relay.extra[0].url: "": want wss://`},
		{"extra dup", "relay:\n  extra:\n    - {id: eu, url: \"wss://a/relay\"}\n    - {id: eu, url: \"wss://b/relay\"}\n", `relay.extra[1].id: "eu" duplicate of relay.extra[0]`},
		{"extra is coordinator", "relay:\n  extra:\n    - {id: coordinator, url: \"wss://a/relay\"}\n", `relay.extra[0].id: "coordinator" is the coordinator relay's id`},
		{"extra bad pin key", "relay:\n  extra:\n    - {id: eu, url: \"wss://a/relay\", tlspin: x}\n", `unknown key "tlspin"`},
		{"extra unknown key", "relay:\n  extra:\n    - {id: eu, url: \"wss://a/relay\", pin: x}\n", `unknown key "pin"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("listen: :1\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `unknown key "bogus"`) {
		t.Fatalf("Load = %v, want error naming the file and key", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Load(missing) succeeded")
	}
}

func TestLocalURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{":8443", "https://127.0.0.1:8443"},
		{"0.0.0.0:8443", "https://127.0.0.1:8443"},
		{"[::]:8443", "https://[::1]:8443"},
		{"10.1.2.3:443", "https://10.1.2.3:443"},
		{"coord.example.com:8443", "https://coord.example.com:8443"},
	} {
		if got, err := LocalURL(tt.in); err != nil || got != tt.want {
			t.Errorf("LocalURL(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "..", "coordinator.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(""))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("mesh_cidr: 10.0.0.0/30\nonline_timeout: 5s\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			return
		}
		// Whatever parses must validate again unchanged.
		c2 := c
		if err := c2.Validate(); err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("Parse(%q) = %+v; Validate again = %v, %+v", in, c, err, c2)
		}
	})
}

func TestParseRelay(t *testing.T) {
	c, err := Parse([]byte("relay:\n  id: coord-eu\n  public_url: wss://c.example/relay\n  extra:\n    - {id: eu-1, url: \"wss://r.example/relay\", tls_pin: p1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Relay.Relays()
	if c.Relay.ID != "coord-eu" || c.Relay.PublicURL != "wss://c.example/relay" || len(got) != 1 ||
		got[0].ID != "eu-1" || got[0].URL != "wss://r.example/relay" || got[0].TLSPin != "p1" {
		t.Fatalf("relay = %+v, extra relays %+v", c.Relay, got)
	}
}

func TestStoreKeys(t *testing.T) {
	const relay = "relay: {id: r1}\npublic_url: https://r1.example:8443\n"
	c, err := Parse([]byte(relay + "store: postgres\npostgres_dsn: postgres://tm@db.example:5432/tunnelmesh?sslmode=verify-full\n"))
	if err != nil || c.Store != StorePostgres || c.PostgresDSN == "" {
		t.Fatalf("Parse postgres = %+v, %v", c, err)
	}
	if d := Default(); d.Store != StoreSQLite {
		t.Fatalf("default store = %q, want sqlite", d.Store)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret-pw\nignored\n"), 0o600)
	c, err = Parse([]byte(relay + "store: postgres\npostgres_dsn: host=db user=tm dbname=tm\npostgres_password_file: " + pwFile + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := c.PostgresPassword(); err != nil || pw != "s3cret-pw" {
		t.Fatalf("PostgresPassword = %q, %v", pw, err)
	}
	for _, tt := range []struct{ in, want string }{
		{"store: mysql\n", `store: "mysql": want sqlite or postgres`},
		{"store: postgres\n", "postgres_dsn: required with store: postgres"},
		{"postgres_dsn: postgres://db/x\n", `postgres_dsn: set, but store is "sqlite"`},
		{"postgres_password_file: /pw\n", `postgres_password_file: set, but store is "sqlite"`},
		{relay + "store: postgres\npostgres_dsn: postgres://u:hunter2@db/x\npostgres_password_file: /pw\n", "postgres_password_file: set, but postgres_dsn holds a password too"},
		{relay + "store: postgres\npostgres_dsn: host=db password=hunter2\npostgres_password_file: /pw\n", "postgres_password_file: set, but postgres_dsn holds a password too"},
		{"store: postgres\npostgres_dsn: postgres://db/x\npublic_url: https://r1.example\n", `relay.id: with store: postgres give each replica's relay its own id`},
		{"store: postgres\npostgres_dsn: postgres://db/x\nrelay: {id: r1}\n", "public_url: required with store: postgres and a wildcard listen address"},
		{"store: postgres\npostgres_dsn: \"postgres://u:hunter2@db:notaport/x\"\n", "postgres_dsn: "},
		{"store: postgres\npostgress_dsn: x\n", `unknown key "postgress_dsn"`},
	} {
		_, err := Parse([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tt.in, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) error shows the password: %v", tt.in, err)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	c, _ = Parse([]byte(relay + "store: postgres\npostgres_dsn: postgres://db/x\npostgres_password_file: " + empty + "\n"))
	if _, err := c.PostgresPassword(); err == nil {
		t.Fatal("an empty password file was accepted")
	}
	for _, ok := range []string{
		"store: postgres\npostgres_dsn: postgres://db/x\nrelay: {disabled: true}\n",
		"store: postgres\npostgres_dsn: postgres://db/x\nrelay: {id: r2}\nlisten: 10.0.0.2:8443\n",
		"store: postgres\npostgres_dsn: postgres://db/x\nrelay: {id: r2, public_url: \"wss://r2.example/relay\"}\n",
	} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%q) = %v", ok, err)
		}
	}
}
