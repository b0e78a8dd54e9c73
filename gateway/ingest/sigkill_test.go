package ingest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
	"github.com/canary-gw/canary/gateway/mqtt"
	"github.com/canary-gw/canary/gateway/outbox"
	"github.com/canary-gw/canary/internal/testenv"
)

// TestMain doubles as the "gateway" process that TestDeliveryGatewaySIGKILL
// starts and kills: with CANARY_HELPER_OUTBOX set, the test binary appends
// poll batches to that outbox and publishes them until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("CANARY_HELPER_OUTBOX"); dir != "" {
		if err := helperGateway(dir, os.Getenv("CANARY_HELPER_BROKER"), os.Getenv("CANARY_HELPER_RELEASE")); err != nil {
			fmt.Fprintln(os.Stderr, "helper gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperGateway(dir, url, release string) error {
	log := zerolog.New(os.Stderr)
	ob, err := outbox.Open(outbox.Options{Dir: dir, Log: log})
	if err != nil {
		return err
	}
	p, err := mqtt.NewPublisher(mqtt.Options{Config: configs.MQTT{URL: url, TopicPrefix: "canary"}, Site: "site1", Outbox: ob,
		Release: release, Log: log, ReceiptTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	go func() { _ = p.Run(context.Background()) }() // runs until SIGKILL
	for {
		items := make([]outbox.Item, 0, 2)
		for d := 0; d < 2; d++ {
			dev := "dev" + strconv.Itoa(d)
			seq := ob.LastSeq(outbox.KindReadings, dev)
			items = append(items, mqtt.ReadingsItem(mqtt.Readings{Site: "site1", Device: dev, TS: base.Add(time.Duration(seq) * time.Millisecond),
				Readings: []mqtt.Reading{{Sensor: "ch4", Kind: "methane", Value: 0.1, Valid: true, Unit: "%vol", Quality: mqtt.QualityGood}}}))
		}
		if _, err := ob.Append(context.Background(), items...); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond) // the poll interval of this synthetic gateway
	}
}

// The gateway process dies by SIGKILL mid-stream (appending and publishing):
// every batch it committed reaches InfluxDB after a restart, with no hole.
func TestDeliveryGatewaySIGKILL(t *testing.T) {
	for _, mode := range []string{configs.ReleasePuback, configs.ReleaseReceipt} {
		t.Run(mode, func(t *testing.T) {
			r := newRig(t, testenv.MosquittoOptions{})
			r.startIngest("ingest-a")
			for round := 0; round < 2; round++ {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "CANARY_HELPER_OUTBOX="+r.dir, "CANARY_HELPER_BROKER=tcp://"+r.proxy.Addr, "CANARY_HELPER_RELEASE="+mode)
				logf, err := os.Create(filepath.Join(t.TempDir(), "helper.log"))
				require.NoError(t, err)
				cmd.Stdout, cmd.Stderr = logf, logf
				require.NoError(t, cmd.Start())
				before := len(r.seqs()["dev0"])
				eventually(t, 30*time.Second, func() bool { return len(r.seqs()["dev0"]) > before+100 }, "the helper gateway delivers")
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				_ = cmd.Wait()
				require.NoError(t, logf.Close())
			}
			// Restart: the committed sequence is the ground truth.
			r.openOutbox(0, nil)
			r.mu.Lock()
			for _, dev := range []string{"dev0", "dev1"} {
				r.produced[dev] = int(r.ob.LastSeq(outbox.KindReadings, dev))
			}
			r.mu.Unlock()
			require.Positive(t, r.produced["dev0"])
			r.startPublisher(mode)
			r.waitStored(60 * time.Second)
		})
	}
}
