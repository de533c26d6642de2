// Package policycli is the `policy` command line: validate, test and diff
// a policy file offline, and apply, get and roll back the registry's
// policy. `tunnelmesh policy` calls Run.
//
// Exit codes fit a CI pipeline:
//
//	0  success (valid, tests pass, applied, or no changes)
//	1  the policy is invalid, a test fails, the registry refused it, or
//	   (diff --exit-code) the policy would change something
//	2  usage error
//	3  operational error: a file cannot be read, the registry cannot be
//	   reached or answered an unexpected error
package policycli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitPolicy  = 1
	ExitUsage   = 2
	ExitFailure = 3
)

// Environment variables read when the connection flags are unset (the same
// as the admin commands').
const (
	EnvServer     = adminclient.EnvServer
	EnvAdminToken = adminclient.EnvAdminToken
	EnvPin        = adminclient.EnvPin
)

// Usage is the help text; %[1]s is the program prefix ("tunnelmesh").
const Usage = `usage: %[1]s policy COMMAND [flags]

offline:
  validate -f FILE                      check syntax, keys and names
  test -f FILE [--nodes NODES.json]     run the file's tests
  diff -f FILE --old OLD [--nodes NODES.json] [--exit-code]
                                        what would change for which nodes

against the registry:
  apply -f FILE [--if-version N]        check, test and upload (a new version)
  get [--version N] [-o FILE]           print the current (or an older) policy; with none
                                        applied, the built-in default (version 0)
  versions                              list the kept versions (none while the default is in force)
  rollback N                            make version N current again (as a new version)
  diff -f FILE [--exit-code]            compare with the registry's policy and nodes
  test -f FILE --live                   run the tests against the registry's nodes

NODES.json is a JSON list of nodes with name, ip and tags (the output of
'admin nodes list --json' will do). Offline without --nodes, the nodes are
the test_nodes of the file(s).

registry flags:
  --config FILE       the registry's config: finds server, credential and pin
  --server URL        the registry (env TUNNELMESH_REGISTRY_URL)
  --admin-token T     admin credential (env TUNNELMESH_ADMIN_TOKEN); other users
                      see flags in ps: prefer the file or the env
  --admin-token-file F  read the admin credential from F (env TUNNELMESH_ADMIN_TOKEN_FILE)
  --pin PIN           TLS pin of the registry (env TUNNELMESH_REGISTRY_PIN)

exit codes: 0 ok, 1 policy invalid/tests failed/refused/changes (diff
--exit-code), 2 usage, 3 files or registry unreachable.
`

type cmd struct {
	ctx            context.Context
	stdout, stderr io.Writer
	prog           string

	file, old, nodesFile, out        string
	version, ifVersion               uint64
	live, exitCode                   bool
	config, server, token, tokenFile string
	pin                              string
}

// Run runs a policy command; args exclude "policy". prog prefixes the
// usage text ("tunnelmesh").
func Run(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	c := &cmd{ctx: ctx, stdout: stdout, stderr: stderr, prog: prog}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stdout, Usage, prog)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	name, args := args[0], args[1:]
	fs := flag.NewFlagSet("policy "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, Usage, prog) }
	needFile := false
	switch name {
	case "validate":
		needFile = true
	case "test":
		needFile = true
		fs.StringVar(&c.nodesFile, "nodes", "", "JSON list of nodes to test against")
		fs.BoolVar(&c.live, "live", false, "test against the registry's nodes")
	case "diff":
		needFile = true
		fs.StringVar(&c.old, "old", "", "the old policy file (default: the registry's policy)")
		fs.StringVar(&c.nodesFile, "nodes", "", "JSON list of nodes")
		fs.BoolVar(&c.exitCode, "exit-code", false, "exit 1 when something would change")
	case "apply":
		needFile = true
		fs.Uint64Var(&c.ifVersion, "if-version", 0, "refuse unless the registry's current version is this")
	case "get":
		fs.Uint64Var(&c.version, "version", 0, "an older version")
		fs.StringVar(&c.out, "o", "", "write to this file instead of stdout")
	case "versions", "rollback":
	default:
		fmt.Fprintf(stderr, "policy: unknown command %q\n", name)
		fmt.Fprintf(stderr, Usage, prog)
		return ExitUsage
	}
	if needFile {
		fs.StringVar(&c.file, "f", "", "the policy file (- for stdin)")
	}
	fs.StringVar(&c.config, "config", "", "the registry's configuration file")
	fs.StringVar(&c.server, "server", "", "registry URL")
	fs.StringVar(&c.token, "admin-token", "", "admin credential (default: $"+adminclient.EnvAdminToken+", else the file $"+adminclient.EnvAdminTokenFile+" names, else from the data directory); other users see it in ps, prefer --admin-token-file")
	fs.StringVar(&c.tokenFile, "admin-token-file", "", "read the admin credential from this file")
	fs.StringVar(&c.pin, "pin", "", "TLS pin of the registry")
	// Flags may come before and after the arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	wantArgs := 0
	if name == "rollback" {
		wantArgs = 1
	}
	if len(pos) != wantArgs {
		fmt.Fprintf(stderr, "policy %s: want %d argument(s), got %q\n", name, wantArgs, pos)
		return ExitUsage
	}
	if needFile && c.file == "" {
		fmt.Fprintf(stderr, "policy %s: -f FILE is required\n", name)
		return ExitUsage
	}
	if c.live && c.nodesFile != "" {
		fmt.Fprintf(stderr, "policy %s: --live and --nodes exclude each other\n", name)
		return ExitUsage
	}
	switch name {
	case "validate":
		return c.validate()
	case "test":
		return c.test()
	case "diff":
		return c.diff()
	case "apply":
		return c.apply()
	case "get":
		return c.get()
	case "versions":
		return c.versions()
	case "rollback":
		v, err := parseVersion(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "policy rollback: %v\n", err)
			return ExitUsage
		}
		return c.rollback(v)
	}
	return ExitUsage
}

func parseVersion(s string) (uint64, error) {
	var v uint64
	if _, err := fmt.Sscan(s, &v); err != nil || v == 0 || fmt.Sprint(v) != s {
		return 0, fmt.Errorf("%q is not a version number", s)
	}
	return v, nil
}

// fail prints err and returns the exit code it deserves.
func (c *cmd) fail(op string, err error) int {
	var pe policy.Errors
	if errors.As(err, &pe) {
		fmt.Fprintln(c.stderr, pe.Error())
		return ExitPolicy
	}
	var ae *regclient.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadRequest, http.StatusConflict:
			fmt.Fprintf(c.stderr, "%s: refused by the registry (%d %s):\n%s\n", op, ae.Status, ae.Body.Code, ae.Body.Error)
			return ExitPolicy
		}
	}
	fmt.Fprintf(c.stderr, "%s: %v\n", op, err)
	return ExitFailure
}

func (c *cmd) readFile(path string) ([]byte, string, error) {
	if path == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, policy.MaxFileBytes+1))
		return b, "<stdin>", err
	}
	b, err := os.ReadFile(path)
	return b, path, err
}

// load reads and parses a policy file; code is non-zero on failure.
func (c *cmd) load(path string) (*policy.Policy, []byte, int) {
	data, name, err := c.readFile(path)
	if err != nil {
		fmt.Fprintf(c.stderr, "policy: %v\n", err)
		return nil, nil, ExitFailure
	}
	pol, err := policy.Parse(name, data)
	if err != nil {
		return nil, nil, c.fail("policy", err)
	}
	return pol, data, ExitOK
}

func (c *cmd) validate() int {
	pol, _, code := c.load(c.file)
	if code != ExitOK {
		return code
	}
	targets := 0
	for _, t := range pol.Tests {
		targets += len(t.Accept) + len(t.Deny) + len(t.StorageAccept) + len(t.StorageDeny) + len(t.NFSAccept) + len(t.NFSDeny)
	}
	fmt.Fprintf(c.stdout, "%s: valid (%d tags, %d groups, %d rules, %d tests with %d targets)\n",
		c.file, len(pol.Tags), len(pol.Groups), len(pol.Rules), len(pol.Tests), targets)
	return ExitOK
}

func (c *cmd) test() int {
	pol, _, code := c.load(c.file)
	if code != ExitOK {
		return code
	}
	var nodes []api.Node
	switch {
	case c.live:
		ac, err := c.client()
		if err != nil {
			return c.fail("policy test", err)
		}
		if nodes, err = liveNodes(c.ctx, ac); err != nil {
			return c.fail("policy test", err)
		}
	case c.nodesFile != "":
		var err error
		if nodes, err = readNodes(c.nodesFile); err != nil {
			return c.fail("policy test", err)
		}
	}
	return c.report(pol.RunTests(nodes))
}

func (c *cmd) report(results []policy.TestResult) int {
	failed := 0
	for _, r := range results {
		fmt.Fprintln(c.stdout, r.String())
		if !r.Pass {
			failed++
		}
	}
	fmt.Fprintf(c.stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return ExitPolicy
	}
	return ExitOK
}

func (c *cmd) diff() int {
	newPol, _, code := c.load(c.file)
	if code != ExitOK {
		return code
	}
	var oldPol *policy.Policy
	var nodes []api.Node
	if c.old != "" {
		if oldPol, _, code = c.load(c.old); code != ExitOK {
			return code
		}
		if c.nodesFile != "" {
			var err error
			if nodes, err = readNodes(c.nodesFile); err != nil {
				return c.fail("policy diff", err)
			}
		} else {
			nodes = testNodes(oldPol, newPol)
		}
	} else {
		ac, err := c.client()
		if err != nil {
			return c.fail("policy diff", err)
		}
		cur, err := ac.Policy(c.ctx, 0)
		var ae *regclient.APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Body.Code == api.CodeNotFound:
			// No policy yet: everything is new.
		case err != nil:
			return c.fail("policy diff", err)
		default:
			name := fmt.Sprintf("registry policy version %d", cur.Version)
			if cur.Version == 0 {
				name = "the built-in default policy"
			}
			if oldPol, err = policy.Parse(name, []byte(cur.Policy)); err != nil {
				return c.fail("policy diff", err)
			}
		}
		if c.nodesFile != "" {
			nodes, err = readNodes(c.nodesFile)
		} else {
			nodes, err = liveNodes(c.ctx, ac)
		}
		if err != nil {
			return c.fail("policy diff", err)
		}
	}
	d := policy.Diff(oldPol, newPol, nodes)
	fmt.Fprint(c.stdout, policy.FormatDiff(d))
	if c.exitCode && len(d) > 0 {
		return ExitPolicy
	}
	return ExitOK
}

func (c *cmd) apply() int {
	pol, data, code := c.load(c.file)
	if code != ExitOK {
		return code
	}
	ac, err := c.client()
	if err != nil {
		return c.fail("policy apply", err)
	}
	// Run the tests here first for a readable report; the registry runs
	// them again against the same nodes before it accepts the policy.
	nodes, err := liveNodes(c.ctx, ac)
	if err != nil {
		return c.fail("policy apply", err)
	}
	results := pol.RunTests(nodes)
	for _, r := range results {
		if !r.Pass {
			c.report(results)
			fmt.Fprintln(c.stderr, "policy apply: tests failed; nothing was applied")
			return ExitPolicy
		}
	}
	resp, err := ac.PutPolicy(c.ctx, policy.PutRequest{Policy: string(data), IfVersion: c.ifVersion})
	if err != nil {
		return c.fail("policy apply", err)
	}
	if !resp.Changed {
		fmt.Fprintf(c.stdout, "unchanged: the registry's policy is already this file (version %d)\n", resp.Version)
		return ExitOK
	}
	fmt.Fprintf(c.stdout, "applied: version %d (%d test targets passed)\n", resp.Version, resp.Tests)
	return ExitOK
}

func (c *cmd) get() int {
	ac, err := c.client()
	if err != nil {
		return c.fail("policy get", err)
	}
	v, err := ac.Policy(c.ctx, c.version)
	if err != nil {
		return c.fail("policy get", err)
	}
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(v.Policy), 0o644); err != nil {
			return c.fail("policy get", err)
		}
		fmt.Fprintf(c.stderr, "policy version %d written to %s\n", v.Version, c.out)
		return ExitOK
	}
	if v.Version == 0 {
		fmt.Fprintln(c.stderr, noPolicyApplied)
	}
	fmt.Fprint(c.stdout, v.Policy)
	return ExitOK
}

func (c *cmd) versions() int {
	ac, err := c.client()
	if err != nil {
		return c.fail("policy versions", err)
	}
	vs, err := ac.PolicyVersions(c.ctx)
	if err != nil {
		return c.fail("policy versions", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCREATED\tBYTES")
	for _, v := range vs {
		fmt.Fprintf(tw, "%d\t%s\t%d\n", v.Version, v.CreatedAt.Local().Format(time.DateTime), v.Bytes)
	}
	tw.Flush()
	if len(vs) == 0 {
		fmt.Fprintln(c.stderr, noPolicyApplied)
	}
	return ExitOK
}

// noPolicyApplied is what get and versions say while the registry stores
// no policy version.
const noPolicyApplied = "no policy applied: the built-in default policy (version 0) is in force; tunnelmesh policy apply replaces it"

func (c *cmd) rollback(version uint64) int {
	ac, err := c.client()
	if err != nil {
		return c.fail("policy rollback", err)
	}
	old, err := ac.Policy(c.ctx, version)
	if err != nil {
		return c.fail("policy rollback", err)
	}
	resp, err := ac.PutPolicy(c.ctx, policy.PutRequest{Policy: old.Policy})
	if err != nil {
		return c.fail("policy rollback", err)
	}
	if !resp.Changed {
		fmt.Fprintf(c.stdout, "unchanged: version %d is already current (as version %d)\n", version, resp.Version)
		return ExitOK
	}
	fmt.Fprintf(c.stdout, "rolled back: version %d is current again as version %d\n", version, resp.Version)
	return ExitOK
}

// readNodes reads a JSON list of nodes (name, ip, tags).
func readNodes(path string) ([]api.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nodes []api.Node
	if err := json.Unmarshal(data, &nodes); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, n := range nodes {
		if api.ValidateName(api.NormalizeName(n.Name)) != nil || !n.IP.Is4() {
			return nil, fmt.Errorf("%s: node %d: want a name and an IPv4 ip", path, i)
		}
	}
	return nodes, nil
}

func liveNodes(ctx context.Context, ac *adminclient.Client) ([]api.Node, error) {
	infos, err := ac.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]api.Node, len(infos))
	for i, n := range infos {
		nodes[i] = api.Node{ID: n.ID, Name: n.Name, IP: n.IP, Tags: n.Tags}
	}
	return nodes, nil
}

// testNodes makes nodes of the test_nodes of the policies, for an offline
// diff: addresses from 198.18.0.0/15 (reserved for benchmarks), shown by
// name in the diff.
func testNodes(pols ...*policy.Policy) []api.Node {
	var nodes []api.Node
	seen := map[string]bool{}
	for _, p := range pols {
		for _, tn := range p.TestNodes {
			if seen[tn.Name] {
				continue
			}
			seen[tn.Name] = true
			i := len(nodes) + 1
			nodes = append(nodes, api.Node{Name: tn.Name, Tags: tn.Tags,
				IP: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})})
		}
	}
	return nodes
}

// client resolves the registry, credential and pin (adminclient.Target).
func (c *cmd) client() (*adminclient.Client, error) {
	return adminclient.Target{Config: c.config, Server: c.server, Token: c.token, TokenFile: c.tokenFile, Pin: c.pin}.Client()
}
