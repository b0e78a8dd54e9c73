package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/ingest"
)

func newIngestCmd(g *globalFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "ingest -c ingest.yaml",
		Short: "Write MQTT readings and alarms into InfluxDB (run N replicas on one share group)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("ingest: -c FILE is required")
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, warnings, err := configs.LoadIngest(file)
			if err := configResult(cmd, file, warnings, err); err != nil {
				return err
			}
			runtimeDefaults(cmd.Context(), log, ingestGCPercent)
			w, err := ingest.NewWriter(ingest.WriterOptions{Config: cfg.InfluxDB, Log: log})
			if err != nil {
				return usageError{err}
			}
			defer w.Close()
			in, err := ingest.New(ingest.Options{MQTT: cfg.MQTT.MQTT, ShareGroup: cfg.MQTT.ShareGroup, Sites: cfg.Sites, Writer: w,
				BatchPoints: cfg.InfluxDB.BatchPoints, BatchWait: cfg.InfluxDB.BatchWait, Log: log})
			if err != nil {
				return usageError{err}
			}
			grp, ctx := errgroup.WithContext(cmd.Context())
			grp.Go(func() error { return in.Run(ctx) })
			if cfg.Metrics != "" {
				ln, err := net.Listen("tcp", cfg.Metrics)
				if err != nil {
					return fmt.Errorf("ingest metrics listen %s: %w", cfg.Metrics, err)
				}
				srv := &http.Server{Handler: ingestMux(in, w), ReadHeaderTimeout: 5 * time.Second}
				grp.Go(func() error {
					if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
						return fmt.Errorf("ingest metrics: %w", err)
					}
					return nil
				})
				grp.Go(func() error {
					<-ctx.Done()
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
					defer cancel()
					return srv.Shutdown(sctx)
				})
				log.Info().Str("listen", ln.Addr().String()).Msg("ingest metrics listening")
			}
			log.Info().Str("broker", cfg.MQTT.URL).Str("share_group", cfg.MQTT.ShareGroup).Str("bucket", cfg.InfluxDB.Bucket).Msg("ingest started")
			err = grp.Wait()
			log.Info().Msg("ingest stopped")
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "ingest config file (YAML)")
	return cmd
}

// ingestMux serves /metrics (Prometheus text format, written by hand to
// keep the ingest's dependencies small) and /healthz (200 while subscribed).
func ingestMux(in *ingest.Ingest, w *ingest.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
		st := in.Stats()
		sub := 0
		if in.Subscribed() {
			sub = 1
		}
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for _, m := range []struct {
			name, typ, help string
			v               uint64
		}{
			{"canary_ingest_messages_total", "counter", "MQTT messages acknowledged after InfluxDB accepted them.", st.Messages},
			{"canary_ingest_points_total", "counter", "Points written to InfluxDB.", st.Points},
			{"canary_ingest_batches_total", "counter", "Successful InfluxDB writes.", st.Batches},
			{"canary_ingest_dead_letters_total", "counter", "Messages sent to the dead-letter topic.", st.DeadLetters},
			{"canary_ingest_receipts_total", "counter", "Delivery receipts published.", st.Receipts},
			{"canary_ingest_write_retries_total", "counter", "InfluxDB write requests retried.", w.Retries()},
			{"canary_ingest_subscribed", "gauge", "1 while the MQTT subscription is up.", uint64(sub)},
		} {
			fmt.Fprintf(rw, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.v)
		}
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		if !in.Subscribed() {
			http.Error(rw, "not subscribed", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok\n"))
	})
	return mux
}
