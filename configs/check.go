package configs

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// Check loads a config file of any kind (a site config, an ingest config
// for `canary ingest`, or a control-room config for `canary control`),
// telling them apart by their top-level keys, and returns a one-line summary
// of what it holds. A file with neither site nor devices is a control-room
// config when it has an http section or a command_timeout and no influxdb,
// else an ingest config when it has influxdb or sites.
func Check(path string) (summary string, warnings []Problem, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read config: %w", err)
	}
	k := topKeys(data)
	if k != nil && !k["site"] && !k["devices"] && !k["influxdb"] && (k["http"] || k["command_timeout"]) {
		var c Control
		warnings, err = Parse(path, data, &c)
		if err != nil {
			return "", warnings, err
		}
		sites := "every site"
		if len(c.Sites) > 0 {
			sites = fmt.Sprintf("sites %v", c.Sites)
		}
		return fmt.Sprintf("control room: %s from %s, ui on %s", sites, c.MQTT.URL, c.HTTP.Listen), warnings, nil
	}
	if k != nil && !k["site"] && !k["devices"] && (k["influxdb"] || k["sites"]) {
		var in Ingest
		warnings, err = Parse(path, data, &in)
		if err != nil {
			return "", warnings, err
		}
		return fmt.Sprintf("ingest: share group %s, influxdb %s bucket %s", in.MQTT.ShareGroup, in.InfluxDB.URL, in.InfluxDB.Bucket), warnings, nil
	}
	var s Site
	warnings, err = Parse(path, data, &s)
	if err != nil {
		return "", warnings, err
	}
	n := 0
	for _, d := range s.Devices {
		n += len(d.Sensors)
	}
	return fmt.Sprintf("site %s: %d devices, %d sensors", s.Site, len(s.Devices), n), warnings, nil
}

// topKeys returns the top-level keys of a YAML document, or nil.
func topKeys(data []byte) map[string]bool {
	var m map[string]yaml.Node
	if yaml.Unmarshal(data, &m) != nil {
		return nil
	}
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
