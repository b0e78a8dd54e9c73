package main

import (
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a site or ingest config; every error as FILE:LINE: field.path: message",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("check: -c FILE is required")
			}
			return usageErrorf("check: not built yet")
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file")
	return cmd
}
