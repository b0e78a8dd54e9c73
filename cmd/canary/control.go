package main

import (
	"github.com/spf13/cobra"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/control"
)

func newControlCmd(g *globalFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "control -c control.yaml",
		Short: "Run a central control room: every site's alarms and readings from MQTT, actions sent to the sites",
		Long: "control serves the control-room UI and HTTP API for many sites at once. It is fed from the\n" +
			"broker (retained alarm and status topics, readings, events of every site, or of the sites\n" +
			"listed under sites:) and sends operator actions on each site's cmd topic, answering only\n" +
			"when the site's gateway has answered on cmd/result.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("control: -c FILE is required")
			}
			cfg, warnings, err := configs.LoadControl(file)
			if err := configResult(cmd, file, warnings, err); err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			room, err := control.New(control.Options{Config: cfg, Log: log})
			if err != nil {
				return err
			}
			return room.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "control-room config file")
	return cmd
}
