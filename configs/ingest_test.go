package configs

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/configerr"
)

func TestIngestExampleLoads(t *testing.T) {
	c, _, err := LoadIngest("ingest.yaml")
	require.NoError(t, err)
	require.Equal(t, "canary-ingest", c.MQTT.ShareGroup)
	require.Equal(t, "canary-ingest-1", c.MQTT.ClientID)
	require.Equal(t, "canary/autogen", c.InfluxDB.Bucket)
	require.Equal(t, 5000, c.InfluxDB.BatchPoints)
}

func TestIngestConfigErrorsNameTheField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
mqtt:
  url: ftp://broker:1883
  share_group: a/b
  cert_file: /x.pem
influxdb:
  url: http://127.0.0.1:8086
  bucket: /canary
  batch_points: -1
sites: [Bad]
`), 0o600))
	_, _, err := LoadIngest(path)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	var paths []string
	for _, p := range cerr.Problems {
		require.Positive(t, p.Line, "every problem is located: %s", p)
		paths = append(paths, p.Path)
	}
	sort.Strings(paths)
	require.Equal(t, []string{"influxdb.batch_points", "influxdb.bucket", "mqtt.cert_file", "mqtt.client_id", "mqtt.key_file", "mqtt.share_group", "mqtt.url", "sites[0]"}, paths)

	require.NoError(t, os.WriteFile(path, []byte("mqtt:\n  urll: tcp://x:1\n"), 0o600))
	_, _, err = LoadIngest(path)
	require.ErrorContains(t, err, `unknown key "urll" (did you mean "url"?)`, "unknown keys are errors")
}

func TestIngestMetricsAddressIsChecked(t *testing.T) {
	const base = "mqtt: {client_id: a}\ninfluxdb: {url: 'http://127.0.0.1:8086', bucket: canary/autogen}\n"
	for metrics, want := range map[string]string{
		`""`: "", "127.0.0.1:9108": "", ":9108": "", "'[::1]:9108'": "",
		"9108":            `x.yaml:3: metrics: "9108" is not host:port (e.g. 127.0.0.1:9108)`,
		"127.0.0.1:99999": `x.yaml:3: metrics: port "99999" is not a number from 0 to 65535`,
		"localhost:prom":  `x.yaml:3: metrics: port "prom" is not a number from 0 to 65535`,
	} {
		var c Ingest
		_, err := Parse("x.yaml", []byte(base+"metrics: "+metrics+"\n"), &c)
		if want == "" {
			require.NoError(t, err, metrics)
		} else {
			require.EqualError(t, err, want, metrics)
		}
	}
}

func TestOutboxAndMQTTValidate(t *testing.T) {
	o := Outbox{}
	o.SetDefaults()
	require.NoError(t, o.Validate())
	o.Release = "ack"
	o.MaxBytes = 10
	require.Len(t, configerr.Flatten(o.Validate()), 2)

	m := MQTT{}
	m.SetDefaults()
	require.NoError(t, m.Validate())
	require.Equal(t, "canary", m.TopicPrefix)
	m = MQTT{URL: "ssl://broker:8883", CAFile: "/ca.pem", PasswordFile: "/p", TopicPrefix: "a+b"}
	var paths []string
	for _, fe := range configerr.Sorted(m.Validate()) {
		paths = append(paths, fe.Path)
	}
	require.Equal(t, []string{"password_file", "topic_prefix"}, paths)
	m = MQTT{URL: "tcp://broker:1883", CAFile: "/ca.pem", TopicPrefix: "canary"}
	require.ErrorContains(t, m.Validate(), "ca_file: needs a TLS url")
}

func TestMQTTURLRefusesCredentials(t *testing.T) {
	m := MQTT{URL: "tcp://ctl:S3cret@127.0.0.1:1883"}
	m.SetDefaults()
	err := m.Validate()
	require.ErrorContains(t, err, "credentials in the URL are not allowed")
	require.NotContains(t, err.Error(), "S3cret", "the error must not repeat the secret")
}

func TestIngestBatchWaitDefaultsLongerThanTheEdge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ingest.yaml")
	require.NoError(t, os.WriteFile(path, []byte("mqtt: {client_id: a}\ninfluxdb: {url: 'http://127.0.0.1:8086', bucket: canary/autogen}\n"), 0o600))
	c, _, err := LoadIngest(path)
	require.NoError(t, err)
	require.Equal(t, IngestBatchWait, c.InfluxDB.BatchWait)

	require.NoError(t, os.WriteFile(path, []byte("mqtt: {client_id: a}\ninfluxdb: {url: 'http://127.0.0.1:8086', bucket: canary/autogen, batch_wait: 200ms}\n"), 0o600))
	c, _, err = LoadIngest(path)
	require.NoError(t, err)
	require.Equal(t, 200*time.Millisecond, c.InfluxDB.BatchWait, "an explicit value stays")

	var site InfluxDB
	site.SetDefaults()
	require.Equal(t, 200*time.Millisecond, site.BatchWait, "the edge's direct writer keeps its default")
}
