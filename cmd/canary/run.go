package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway"
)

// configResult prints a config's warnings and problems the way `canary
// check` does and turns them into the command's error: problems and a
// missing file are usage errors (exit 2).
func configResult(cmd *cobra.Command, file string, warnings []configs.Problem, err error) error {
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), w.String())
	}
	var cerr *configs.Error
	if errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			fmt.Fprintln(cmd.ErrOrStderr(), p.String())
		}
		return usageErrorf("%s: %d error(s)", file, len(cerr.Problems))
	}
	var pe *fs.PathError
	if err != nil && (errors.Is(err, os.ErrNotExist) || errors.As(err, &pe)) {
		// The -c file could not be read (missing, a directory, not
		// permitted): the command's input is wrong, as for check and sim.
		return usageError{err}
	}
	return err
}

// loadSite loads a site config for a command.
func loadSite(cmd *cobra.Command, file string) (*configs.Site, error) {
	if file == "" {
		return nil, usageErrorf("-c FILE is required")
	}
	site, warnings, err := configs.LoadSite(file)
	if err := configResult(cmd, file, warnings, err); err != nil {
		return nil, err
	}
	return site, nil
}

// loadSiteLean loads a site config without letting the parse set the
// gateway's memory peak: while a large site's YAML is parsed its whole node
// tree is live (a 10 000-sensor site, 940 KB of YAML, peaked at 62 MB in
// `canary check`), so garbage is collected more often while it lasts
// (unless GOGC is set), and the tree is collected before the engine and the
// views are built.
func loadSiteLean(cmd *cobra.Command, file string) (*configs.Site, error) {
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(20))
	}
	defer runtime.GC()
	return loadSite(cmd, file)
}

func newRunCmd(g *globalFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "run -c site.yaml",
		Short: "Run the edge gateway: poll, evaluate alarms, buffer on disk, publish over MQTT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			runtimeDefaults(cmd.Context(), log, gatewayGCPercent)
			site, err := loadSiteLean(cmd, file)
			if err != nil {
				return err
			}
			warnFastPolls(log, site.Devices)
			gw, err := gateway.New(gateway.Options{Site: site, Log: log})
			if err != nil {
				return err
			}
			runErr := gw.Run(cmd.Context())
			if err := gw.Close(); err != nil && runErr == nil {
				runErr = err
			}
			return runErr
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "site config file")
	return cmd
}
