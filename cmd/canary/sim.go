package main

import (
	"fmt"
	"os"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/simulator"
	"github.com/spf13/cobra"
)

func newSimCmd(g *globalFlags) *cobra.Command {
	var (
		file, control, scenarios string
		seed                     int64
		speed                    float64
		local                    bool
	)
	cmd := &cobra.Command{
		Use:   "sim -c site.yaml [--control ADDR] [--scenarios FILE] [--seed N] [--speed X]",
		Short: "Serve a site's devices as simulated Modbus devices",
		Long: "sim serves every Modbus device of a site config at the address its url names\n" +
			"(Modbus TCP, RTU on a pseudo-terminal, RTU over TCP) with values from seeded physics,\n" +
			"and a control API (default " + simulator.DefaultControlAddr + ") to hold values, change device\n" +
			"states and start scenarios. The control API takes a bearer token from CANARY_SIM_TOKEN if set.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("sim: -c FILE is required")
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			site, err := simulator.LoadSite(file)
			if err != nil {
				return usageError{err}
			}
			opts := simulator.Options{Site: site, ControlAddr: control, Speed: speed, Logger: log, Localize: local,
				ControlToken: os.Getenv("CANARY_SIM_TOKEN")}
			if cmd.Flags().Changed("seed") {
				opts.Seed = &seed
			}
			if scenarios != "" {
				list, err := simulator.LoadScenarios(scenarios)
				if err != nil {
					return usageError{err}
				}
				opts.Scenarios = append([]configs.Scenario(nil), list...)
			}
			sim, err := simulator.New(opts)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", file, err)}
			}
			errc := make(chan error, 1)
			go func() { errc <- sim.Run(cmd.Context()) }()
			select {
			case <-sim.Ready():
				out := cmd.OutOrStdout()
				for _, d := range sim.Devices() {
					line := fmt.Sprintf("device %s unit %d at %s://%s", d.ID, d.Unit, d.Transport, d.Address)
					if d.PTY != "" {
						line += " (pty " + d.PTY + ")"
					}
					fmt.Fprintln(out, line)
				}
				fmt.Fprintf(out, "control api at http://%s/api/v1\n", sim.ControlAddr())
				return <-errc
			case err := <-errc:
				return err
			}
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "site config file")
	cmd.Flags().StringVar(&control, "control", simulator.DefaultControlAddr, "control API listen address")
	cmd.Flags().StringVar(&scenarios, "scenarios", "", "YAML file with more scenarios (a list, or a mapping with scenarios:)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "seed for noise and drift (replaces simulation.seed)")
	cmd.Flags().BoolVar(&local, "local", false, "serve every TCP device on 127.0.0.1 at a free port instead of its url's address (try a plant's file on a laptop)")
	cmd.Flags().Float64Var(&speed, "speed", 0, "simulated seconds per real second (replaces simulation.speed)")
	return cmd
}
