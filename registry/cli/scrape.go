package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// scrapeTokens runs "admin scrape-tokens create|list|revoke": the bearer
// tokens Prometheus presents to the registry's service discovery
// (scrapecred.PathSD).
func scrapeTokens(ctx context.Context, af adminFlags, cmd string, args []string, stdout, stderr io.Writer) int {
	sub := flag.NewFlagSet("scrape-tokens "+cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	af.register(sub)
	var (
		name    string
		expiry  time.Duration
		outFile string
		asJSON  bool
	)
	wantArgs := 0
	switch cmd {
	case "create":
		sub.StringVar(&name, "name", "", "what the token is for (e.g. prometheus)")
		sub.DurationVar(&expiry, "expiry", 0, "token lifetime (default: no expiry)")
		sub.StringVar(&outFile, "out", "", "write the token to this file (mode 0600) instead of stdout, for Prometheus's authorization.credentials_file")
	case "list":
		sub.BoolVar(&asJSON, "json", false, "print JSON")
	case "revoke":
		wantArgs = 1
	default:
		fmt.Fprintf(stderr, "unknown admin command %q\n", "scrape-tokens "+cmd)
		return ExitUsage
	}
	if err := sub.Parse(args); err != nil {
		return usageExit(err)
	}
	if sub.NArg() != wantArgs {
		fmt.Fprintf(stderr, "scrape-tokens %s: want %d argument(s), got %d\n", cmd, wantArgs, sub.NArg())
		return ExitUsage
	}
	if expiry < 0 {
		fmt.Fprintf(stderr, "scrape-tokens %s: --expiry must not be negative\n", cmd)
		return ExitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "admin: %v\n", err)
		return ExitError
	}
	switch cmd {
	case "create":
		resp, err := c.CreateScrapeToken(ctx, scrapecred.CreateRequest{Name: name, Expiry: api.Duration(expiry)})
		if err != nil {
			return fail(stderr, err)
		}
		if outFile == "" {
			fmt.Fprintln(stdout, resp.Token)
			break
		}
		if err := os.WriteFile(outFile, []byte(resp.Token+"\n"), 0o600); err != nil {
			return fail(stderr, fmt.Errorf("write scrape token: %w", err))
		}
		fmt.Fprintf(stderr, "scrape token %s written to %s\n", resp.Info.ID, outFile)
	case "list":
		toks, err := c.ScrapeTokens(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		if asJSON {
			return printJSON(stdout, stderr, toks)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES")
		for _, t := range toks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, fmtTime(t.CreatedAt), fmtTime(t.ExpiresAt))
		}
		tw.Flush()
	case "revoke":
		if err := c.RevokeScrapeToken(ctx, sub.Arg(0)); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stderr, "scrape token %s revoked\n", sub.Arg(0))
	}
	return ExitOK
}
