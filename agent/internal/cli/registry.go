package cli

// registryCommands are the coordinator and admin commands, delegated to the
// registry module's CLI.
func registryCommands() []command { return nil }
