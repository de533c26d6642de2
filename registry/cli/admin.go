package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Environment variables the admin commands read when the flags are unset.
const (
	EnvServer     = adminclient.EnvServer
	EnvAdminToken = adminclient.EnvAdminToken
	EnvPin        = adminclient.EnvPin
)

type adminFlags struct {
	config, server, token, tokenFile, pin string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.config, "config", a.config, "the registry's configuration file")
	fs.StringVar(&a.server, "server", a.server, "registry URL (default: from the config's listen)")
	fs.StringVar(&a.token, "admin-token", a.token, "admin credential (default: $"+EnvAdminToken+", else the file $"+adminclient.EnvAdminTokenFile+" names, else from the data directory); other users see it in ps, prefer --admin-token-file")
	fs.StringVar(&a.tokenFile, "admin-token-file", a.tokenFile, "read the admin credential from this file")
	fs.StringVar(&a.pin, "pin", a.pin, "TLS pin of the registry (default: from its certificate)")
}

// Admin runs an admin command (args without "admin"): tokens create|list|
// revoke, nodes list|remove, scrape-tokens create|list|revoke. The server address, admin credential and TLS
// pin come from the flags, the environment, or the registry's own config
// and data directory (--config).
func Admin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var af adminFlags
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	af.register(fs)
	fs.Usage = func() { fmt.Fprint(stderr, strings.SplitN(mainUsage, "admin commands:", 2)[1]) }
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fs.Usage()
		return ExitUsage
	}
	if rest[0] == "scrape-tokens" {
		return scrapeTokens(ctx, af, rest[1], rest[2:], stdout, stderr)
	}
	cmd := rest[0] + " " + rest[1]
	sub := flag.NewFlagSet(cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	af.register(sub)
	var (
		reusable bool
		expiry   time.Duration
		tags     stringList
		asJSON   bool
	)
	switch cmd {
	case "tokens create":
		sub.BoolVar(&reusable, "reusable", false, "token admits any number of joins until it expires")
		sub.DurationVar(&expiry, "expiry", 0, "token lifetime (default: the registry's token_default_expiry)")
		sub.Var(&tags, "tag", "tag for nodes joining with the token (repeatable)")
	case "tokens list", "nodes list":
		sub.BoolVar(&asJSON, "json", false, "print JSON")
	case "tokens revoke", "nodes remove":
	default:
		fmt.Fprintf(stderr, "unknown admin command %q\n", cmd)
		fs.Usage()
		return ExitUsage
	}
	if err := sub.Parse(rest[2:]); err != nil {
		return usageExit(err)
	}
	wantArgs := 0
	if cmd == "tokens revoke" || cmd == "nodes remove" {
		wantArgs = 1
	}
	if sub.NArg() != wantArgs {
		fmt.Fprintf(stderr, "%s: want %d argument(s), got %d\n", cmd, wantArgs, sub.NArg())
		return ExitUsage
	}
	if expiry < 0 {
		fmt.Fprintf(stderr, "%s: --expiry must not be negative\n", cmd)
		return ExitUsage
	}
	if expiry > api.MaxTokenExpiry {
		fmt.Fprintf(stderr, "%s: --expiry %s: longer than the maximum %s (10 years)\n", cmd, expiry, api.MaxTokenExpiry)
		return ExitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "admin: %v\n", err)
		return ExitError
	}
	switch cmd {
	case "tokens create":
		resp, err := c.CreateToken(ctx, api.CreateTokenRequest{Reusable: reusable, Expiry: api.Duration(expiry), Tags: tags})
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintln(stdout, resp.Token)
	case "tokens list":
		toks, err := c.Tokens(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		if asJSON {
			return printJSON(stdout, stderr, toks)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tREUSABLE\tUSES\tEXPIRES\tSTATE\tTAGS")
		now := time.Now()
		for _, t := range toks {
			state := "valid"
			switch {
			case t.Revoked:
				state = "revoked"
			case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
				state = "expired"
			case !t.Reusable && t.Uses > 0:
				state = "used"
			}
			fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\t%s\n", t.ID, t.Reusable, t.Uses, fmtTime(t.ExpiresAt), state, strings.Join(t.Tags, ","))
		}
		tw.Flush()
	case "tokens revoke":
		if err := c.RevokeToken(ctx, sub.Arg(0)); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stderr, "token %s revoked\n", sub.Arg(0))
	case "nodes list":
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		if asJSON {
			return printJSON(stdout, stderr, nodes)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tIP\tFINGERPRINT\tONLINE\tLAST SEEN\tENDPOINTS")
		for _, n := range nodes {
			eps := make([]string, 0, len(n.Endpoints))
			for _, e := range n.Endpoints {
				eps = append(eps, e.String())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", n.Name, n.IP, n.Fingerprint, n.Online, fmtTime(n.LastSeen), strings.Join(eps, ","))
		}
		tw.Flush()
	case "nodes remove":
		if err := c.RemoveNode(ctx, sub.Arg(0)); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stderr, "node %s removed\n", sub.Arg(0))
	}
	return ExitOK
}

// client resolves the registry, credential and pin (adminclient.Target).
func (a *adminFlags) client() (*adminclient.Client, error) {
	return adminclient.Target{Config: a.config, Server: a.server, Token: a.token, TokenFile: a.tokenFile, Pin: a.pin}.Client()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, err)
	}
	return ExitOK
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "admin: %v\n", err)
	return ExitError
}

func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitUsage
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
