package simulator

import (
	"bytes"
	"fmt"
	"os"

	"github.com/canary-gw/canary/configs"
	"go.yaml.in/yaml/v3"
)

// LoadSite reads a site config strictly (unknown keys are errors). It is
// the simulator's own minimal loader until configs.Load lands; it does not
// apply defaults or validate beyond what the simulator needs.
func LoadSite(path string) (*configs.Site, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load site config: %w", err)
	}
	var site configs.Site
	if err := decodeStrict(raw, &site); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &site, nil
}

// LoadScenarios reads a --scenarios file: either a list of scenarios or a
// mapping with a `scenarios:` key.
func LoadScenarios(path string) ([]configs.Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load scenarios: %w", err)
	}
	var list []configs.Scenario
	if err := decodeStrict(raw, &list); err == nil {
		return list, nil
	}
	var doc struct {
		Scenarios []configs.Scenario `yaml:"scenarios"`
	}
	if err := decodeStrict(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Scenarios, nil
}

func decodeStrict(raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	return dec.Decode(v)
}
