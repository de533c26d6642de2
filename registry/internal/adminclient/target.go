package adminclient

import (
	"fmt"
	"os"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/admincred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/config"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/tlscert"
)

// Environment variables an admin command reads when its flags are unset.
const (
	EnvServer     = "TUNNELMESH_REGISTRY_URL"
	EnvAdminToken = "TUNNELMESH_ADMIN_TOKEN"
	// EnvAdminTokenFile names a file holding the admin credential.
	EnvAdminTokenFile = "TUNNELMESH_ADMIN_TOKEN_FILE"
	EnvPin            = "TUNNELMESH_REGISTRY_PIN"
)

// Target is what an admin command was told about the registry it talks to,
// usually from its -config, -server, -admin-token, -admin-token-file and
// -pin flags. Empty (or blank) fields were not given.
type Target struct {
	Config    string // the registry's configuration file
	Server    string // the registry's URL
	Token     string // the admin credential
	TokenFile string // a file holding the admin credential
	Pin       string // the registry's TLS pin
}

// Client resolves the server, credential and pin, each from the Target
// first, then the environment (EnvServer, EnvAdminToken, then
// EnvAdminTokenFile, EnvPin), then the registry's configuration (Config,
// or the defaults) and data directory:
// the server from its listen address, the credential from its admin
// credential file, and the pin from its certificate when the server came
// from the configuration or a configuration file was named.
func (t Target) Client() (*Client, error) {
	cfg := config.Default()
	if t.Config != "" {
		var err error
		if cfg, err = config.Load(t.Config); err != nil {
			return nil, err
		}
	}
	server := firstNonBlank(t.Server, os.Getenv(EnvServer))
	fromConfig := server == ""
	if fromConfig {
		u, err := config.LocalURL(cfg.Listen)
		if err != nil {
			return nil, err
		}
		server = u
	}
	token, err := t.token()
	if err != nil {
		return nil, err
	}
	if token == "" {
		tok, err := admincred.Load(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("%w (pass --config, or --admin-token)", err)
		}
		token = tok
	}
	pin := firstNonBlank(t.Pin, os.Getenv(EnvPin))
	if pin == "" && (fromConfig || t.Config != "") {
		certFile, _ := tlscert.Paths(cfg.DataDir, cfg.TLSCert, cfg.TLSKey)
		p, err := tlscert.PinFromFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("%w (pass --config, or --pin)", err)
		}
		pin = p
	}
	return New(server, token, pin), nil
}

// token returns the credential from Token, TokenFile or the environment;
// "" when none of them gives one.
func (t Target) token() (string, error) {
	if strings.TrimSpace(t.Token) != "" && strings.TrimSpace(t.TokenFile) != "" {
		return "", fmt.Errorf("--admin-token and --admin-token-file exclude each other")
	}
	if tok := strings.TrimSpace(t.Token); tok != "" {
		return tok, nil
	}
	if f := strings.TrimSpace(t.TokenFile); f != "" {
		return readSecretFile("--admin-token-file", f)
	}
	if tok := strings.TrimSpace(os.Getenv(EnvAdminToken)); tok != "" {
		return tok, nil
	}
	if f := strings.TrimSpace(os.Getenv(EnvAdminTokenFile)); f != "" {
		return readSecretFile(EnvAdminTokenFile, f)
	}
	return "", nil
}

// readSecretFile reads a secret (one line, surrounding white space
// trimmed) from path, given by source; a missing or empty file is an error.
func readSecretFile(source, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", source, path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s %s: empty file", source, path)
	}
	return tok, nil
}

// firstNonBlank returns the first of s that is not empty or white space.
func firstNonBlank(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
