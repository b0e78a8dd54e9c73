package mqtt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/configs"
)

// The password comes from password_file (its trailing newline dropped) or
// the environment; an empty file is an error naming it, not an empty
// password the broker would refuse later.
func TestPasswordFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mqtt.pass")
	cfg := configs.MQTT{Username: "gw", PasswordFile: f}
	require.NoError(t, os.WriteFile(f, []byte("s3cret\n"), 0o600))
	pw, err := password(cfg)
	require.NoError(t, err)
	require.Equal(t, "s3cret", pw)
	require.NoError(t, os.WriteFile(f, []byte("\n"), 0o600))
	_, err = password(cfg)
	require.ErrorContains(t, err, "mqtt password_file "+f+" is empty")
	t.Setenv(configs.MQTTPasswordEnv, "from-env")
	pw, err = password(configs.MQTT{Username: "gw"})
	require.NoError(t, err)
	require.Equal(t, "from-env", pw)
}
