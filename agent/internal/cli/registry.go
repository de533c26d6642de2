package cli

import (
	"context"
	"fmt"

	regcli "github.com/tunnelmesh/tunnelmesh/registry/cli"
	"github.com/tunnelmesh/tunnelmesh/registry/policy/policycli"
)

// exitCode is an error carrying a delegated command's exit code; the
// command already printed whatever it had to say.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// registryCommands are the coordinator and admin commands: one
// implementation (the registry module's cli package), two entry points.
func registryCommands() []command {
	return []command{
		{"coordinator", "run the coordinator (registry): tunnelmesh coordinator --config coordinator.yaml", func(ctx context.Context, env Env, args []string) error {
			return codeErr(regcli.Serve(ctx, args, env.Stdout, env.Stderr))
		}},
		{"admin", "administer a running coordinator: tokens create|list|revoke, nodes list|remove", func(ctx context.Context, env Env, args []string) error {
			return codeErr(regcli.Admin(ctx, args, env.Stdout, env.Stderr))
		}},
		{"policy", "policy as code: validate|test|diff|apply|get|versions|rollback -f policy.yaml", func(ctx context.Context, env Env, args []string) error {
			return codeErr(policycli.Run(ctx, "tunnelmesh", args, env.Stdout, env.Stderr))
		}},
	}
}

func codeErr(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}
