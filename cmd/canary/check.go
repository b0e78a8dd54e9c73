package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/canary-gw/canary/configs"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a site or ingest config; every error as FILE:LINE: field.path: message",
		Long: "check validates a site config (canary run, canary sim) or an ingest config (canary ingest)\n" +
			"and prints every problem at once as FILE:LINE: field.path: message.\n" +
			"Exit code 0: valid (warnings may be printed); 2: invalid.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("check: -c FILE is required")
			}
			summary, warnings, err := configs.Check(file)
			if err := configResult(cmd, file, warnings, err); err != nil {
				// Whatever stops a check is the input's fault: exit 2.
				var ue usageError
				if !errors.As(err, &ue) {
					err = usageError{err}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s)\n", file, summary)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file")
	return cmd
}
