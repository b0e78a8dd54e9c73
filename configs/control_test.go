package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestControlExampleLoads(t *testing.T) {
	c, warnings, err := LoadControl("control.yaml")
	require.NoError(t, err)
	require.Empty(t, warnings)
	require.Equal(t, "canary-control-1", c.MQTT.ClientID)
	require.Equal(t, "canary", c.MQTT.TopicPrefix)
	require.Equal(t, "127.0.0.1:8080", c.HTTP.Listen)
	require.Equal(t, 10*time.Second, c.CommandTimeout)
	require.Len(t, c.HTTP.Users, 1)

	summary, _, err := Check("control.yaml")
	require.NoError(t, err)
	require.Contains(t, summary, "control room: every site from tcp://127.0.0.1:1883")
}

func TestControlErrorsByLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.yaml")
	text := strings.Join([]string{
		"mqtt:",
		"  url: ftp://x",
		"http:",
		"  listen: nowhere",
		"sites: [ok, Bad, ok]",
		"comand_timeout: 5s",
	}, "\n")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	_, _, err := LoadControl(path)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	var got []string
	for _, p := range cerr.Problems {
		got = append(got, p.String())
	}
	joined := strings.Join(got, "\n")
	require.Contains(t, joined, path+":2: mqtt.url: unsupported scheme \"ftp\"")
	require.Contains(t, joined, path+":4: http.listen:")
	require.Contains(t, joined, path+":5: sites[1]: \"Bad\" is not a site id")
	require.Contains(t, joined, path+":5: sites[2]: site \"ok\" is listed twice")
	require.Contains(t, joined, path+":6: ")
	require.Contains(t, joined, "comand_timeout")

	// Check tells it from an ingest config by its http section.
	_, _, err = Check(path)
	require.ErrorAs(t, err, &cerr)
	require.Contains(t, cerr.Error(), "http.listen")
}
