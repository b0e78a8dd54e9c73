package configs

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoosenedRegulatoryLimitIsRefusedWithoutOverride(t *testing.T) {
	_, _, err := LoadSite("testdata/valid/loosen-refused.yaml")
	var cerr *Error
	require.True(t, errors.As(err, &cerr), "want config error, got %v", err)
	require.Len(t, cerr.Problems, 1)
	p := cerr.Problems[0]
	require.Equal(t, 12, p.Line)
	require.Equal(t, "devices[0].sensors[0].alarms.high_high.limit", p.Path)
	require.Contains(t, p.Msg, "loosen")
}

func TestLoosenedRegulatoryLimitWarnsLoudlyWithOverride(t *testing.T) {
	s, warnings, err := LoadSite("testdata/valid/loosen.yaml")
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Len(t, warnings, 1)
	require.True(t, warnings[0].Warning)
	require.Equal(t, 12, warnings[0].Line)
	require.Contains(t, warnings[0].String(), "testdata/valid/loosen.yaml:12: warning: devices[0].sensors[0].alarms.high_high.limit: WARNING: loosens a regulatory limit")
}

func TestDefaultsApplied(t *testing.T) {
	s, _, err := LoadSite("testdata/valid/loosen.yaml")
	require.NoError(t, err)
	d := s.Devices[0]
	require.Equal(t, time.Second, d.Poll)
	require.Equal(t, 500*time.Millisecond, d.Timeout)
	require.NotNil(t, d.Unit)
	require.Equal(t, 1, *d.Unit)
	require.Equal(t, "127.0.0.1:8080", s.HTTP.Listen)
	require.Equal(t, "canary", s.MQTT.TopicPrefix)
	ac := s.AlertingConfig()
	require.Len(t, ac.Points, 1)
	require.Equal(t, "face3-gas.ch4", ac.Points[0].ID())
}

func TestOverlappingRegistersWarn(t *testing.T) {
	_, warnings, err := LoadSite("testdata/valid/overlap.yaml")
	require.NoError(t, err)
	var got []string
	for _, w := range warnings {
		got = append(got, w.String())
	}
	require.Equal(t, []string{
		"testdata/valid/overlap.yaml:7: warning: devices[0].sensors[1].address: registers 1-2 overlap sensors[0] (a, registers 0-1): check the address",
		"testdata/valid/overlap.yaml:8: warning: devices[0].sensors[2].address: registers 0-0 overlap sensors[0] (a, registers 0-1): check the address",
		"testdata/valid/overlap.yaml:9: warning: devices[0].sensors[3].address: registers 0-1 overlap sensors[1] (b, registers 1-2): check the address",
		"testdata/valid/overlap.yaml:9: warning: devices[0].sensors[3].address: registers 0-1 overlap sensors[2] (raw, registers 0-0): check the address",
	}, got)
}
