package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

const storageUsage = `Usage:
  tunnelmesh storage credentials [--env | --json | --aws-profile NAME] [--server HOST:PORT] [--state-dir D]
  tunnelmesh storage put [flags] FILE|- BUCKET/KEY
  tunnelmesh storage get [flags] BUCKET/KEY FILE|-
  tunnelmesh storage ls [flags] BUCKET[/PREFIX]`

func runStorage(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "put", "get", "ls":
			return runStorageS3(ctx, env, args[0], args[1:])
		}
	}
	if len(args) == 0 || args[0] != "credentials" {
		fmt.Fprintln(env.Stderr, storageUsage)
		return errUsage
	}
	fs := newFlags(env, "storage credentials", "[--env | --json | --aws-profile NAME] [--server HOST:PORT] [--state-dir D]")
	stateDir := fs.String("state-dir", state.DefaultDir, "state directory of the node")
	server := fs.String("server", "", "the storage service's credentials API, HOST:PORT (default: the node in the netmap publishing the "+api.ServiceStorageAuth+" service)")
	asEnv := fs.Bool("env", false, "print shell export lines (the default)")
	asJSON := fs.Bool("json", false, "print JSON")
	profile := fs.String("aws-profile", "", "write the credentials as this profile of the AWS shared credentials and config files")
	if err := parse(fs, args[1:], 0); err != nil {
		return err
	}
	n := 0
	for _, b := range []bool{*asEnv, *asJSON, *profile != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		fmt.Fprintln(env.Stderr, "--env, --json and --aws-profile exclude each other")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	creds, err := regclient.LoadCredentials(state.Dir(*stateDir).Path(state.CredentialsFile))
	if err != nil {
		return fmt.Errorf("storage credentials: %w", err)
	}
	sc, _, err := fetchStorageCredentials(ctx, creds, *server)
	if err != nil {
		return fmt.Errorf("storage credentials: %w", err)
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]string{
			"AWS_ACCESS_KEY_ID":     sc.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY": sc.SecretAccessKey,
			"AWS_REGION":            sc.Region,
			"AWS_ENDPOINT_URL":      sc.Endpoint,
		})
	case *profile != "":
		if err := writeAWSProfile(*profile, sc); err != nil {
			return fmt.Errorf("storage credentials: %w", err)
		}
		fmt.Fprintf(env.Stdout, "wrote AWS profile %q; use: aws --profile %s s3 ls s3://%s\n", *profile, *profile, firstOr(sc.Buckets, "mesh"))
		return nil
	default:
		for _, kv := range [][2]string{
			{"AWS_ACCESS_KEY_ID", sc.AccessKeyID},
			{"AWS_SECRET_ACCESS_KEY", sc.SecretAccessKey},
			{"AWS_REGION", sc.Region},
			{"AWS_ENDPOINT_URL", sc.Endpoint},
		} {
			fmt.Fprintf(env.Stdout, "export %s=%s\n", kv[0], shellQuote(kv[1]))
		}
		return nil
	}
}

// fetchStorageCredentials asks the storage service for this node's S3
// credentials, signing the request with the node key. Without server, the
// service is found in the node's netmap: the nodes publishing storage-auth
// (several for a storage cluster, whose nodes all answer the same), asked
// in netmap order until one answers; its S3 address (its storage service,
// HOST:PORT) is returned too. With server, s3Addr is empty.
func fetchStorageCredentials(ctx context.Context, creds regclient.Credentials, server string) (sc *api.StorageCredentials, s3Addr string, err error) {
	rc, err := regclient.New(creds)
	if err != nil {
		return nil, "", err
	}
	defer rc.HTTP.CloseIdleConnections()
	if server != "" {
		sc, err = askStorageCredentials(ctx, rc.Credential.NodeID, creds, server)
		return sc, "", err
	}
	nm, err := rc.Netmap(ctx, 0, 0)
	if err != nil {
		return nil, "", err
	}
	return askAnyStorage(ctx, rc.Credential.NodeID, creds, storageServers(nm))
}

// storageServer is a storage node's credentials API and S3 address.
type storageServer struct{ auth, s3 string }

// storageServers lists the nodes of nm publishing storage-auth, in netmap
// order (this node first).
func storageServers(nm *api.Netmap) []storageServer {
	var out []storageServer
	for _, p := range append([]api.Node{nm.Self}, nm.Peers...) {
		if !p.IP.IsValid() {
			continue
		}
		var ss storageServer
		for _, s := range p.Services {
			switch {
			case s.Protocol != "tcp":
			case s.Name == api.ServiceStorageAuth:
				ss.auth = net.JoinHostPort(p.IP.String(), strconv.Itoa(int(s.Port)))
			case s.Name == api.ServiceStorage:
				ss.s3 = net.JoinHostPort(p.IP.String(), strconv.Itoa(int(s.Port)))
			}
		}
		if ss.auth != "" {
			out = append(out, ss)
		}
	}
	return out
}

// askAnyStorage asks each of servers in turn until one answers, and
// returns its answer and S3 address; failing all, every error.
func askAnyStorage(ctx context.Context, nodeID string, creds regclient.Credentials, servers []storageServer) (*api.StorageCredentials, string, error) {
	if len(servers) == 0 {
		return nil, "", errors.New("no node in the netmap publishes the storage service (is a storage node running, and does the policy let this node reach it?)")
	}
	var errs []error
	for _, ss := range servers {
		sc, err := askStorageCredentials(ctx, nodeID, creds, ss.auth)
		if err == nil {
			return sc, ss.s3, nil
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

// askStorageCredentials POSTs the signed credentials request to server.
func askStorageCredentials(ctx context.Context, nodeID string, creds regclient.Credentials, server string) (*api.StorageCredentials, error) {
	body := []byte("{}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+server+api.PathStorageCredentials, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	nodeauth.SignPeer(req, body, nodeID, creds.Key, time.Now())
	// A storage node that is down costs the dial timeout before the next
	// one is asked.
	hc := &http.Client{Timeout: 45 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", server, err)
	}
	defer resp.Body.Close()
	var sc api.StorageCredentials
	if err := regclient.DecodeResponse(resp, 64<<10, &sc); err != nil {
		return nil, fmt.Errorf("ask %s: %w", server, err)
	}
	if sc.AccessKeyID == "" || sc.SecretAccessKey == "" {
		return nil, fmt.Errorf("ask %s: answer without credentials", server)
	}
	return &sc, nil
}

func firstOr(s []string, d string) string {
	if len(s) == 0 {
		return d
	}
	return s[0]
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeAWSProfile sets the profile's section in the AWS shared credentials
// file and config file ($AWS_SHARED_CREDENTIALS_FILE and $AWS_CONFIG_FILE,
// or ~/.aws/credentials and ~/.aws/config), keeping every other section.
func writeAWSProfile(profile string, sc *api.StorageCredentials) error {
	if profile == "" || strings.ContainsAny(profile, "[]\n\r") {
		return fmt.Errorf("aws profile %q: not a profile name", profile)
	}
	home, _ := os.UserHomeDir()
	credFile := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" {
		credFile = filepath.Join(home, ".aws", "credentials")
	}
	cfgFile := os.Getenv("AWS_CONFIG_FILE")
	if cfgFile == "" {
		cfgFile = filepath.Join(home, ".aws", "config")
	}
	if err := setINISection(credFile, profile, []string{
		"aws_access_key_id = " + sc.AccessKeyID,
		"aws_secret_access_key = " + sc.SecretAccessKey,
	}); err != nil {
		return err
	}
	section := "profile " + profile
	if profile == "default" {
		section = "default"
	}
	return setINISection(cfgFile, section, []string{
		"region = " + sc.Region,
		"endpoint_url = " + sc.Endpoint,
	})
}

// setINISection replaces (or appends) section [name] of the INI file at
// path with lines, writing the file with mode 0600.
func setINISection(path, name string, lines []string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	var out bytes.Buffer
	skip := false
	for _, l := range strings.SplitAfter(string(old), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			skip = strings.TrimSpace(t[1:len(t)-1]) == name
		}
		if !skip && l != "" {
			out.WriteString(l)
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	fmt.Fprintf(&out, "[%s]\n%s\n", name, strings.Join(lines, "\n"))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
