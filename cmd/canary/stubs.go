package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Subcommands not built yet. Each moves to its own file when its issue lands.

var errNotBuilt = errors.New("not built yet in this version")

func notBuilt(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short + " (not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errNotBuilt },
	}
}

func newBenchCmd(*globalFlags) *cobra.Command {
	return notBuilt("bench", "Run a load scenario and report figures")
}
