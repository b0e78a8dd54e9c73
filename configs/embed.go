package configs

import (
	"bytes"
	_ "embed"
)

// demoYAML is configs/demo.yaml, built into the binary so that `canary demo`
// needs no file.
//
//go:embed demo.yaml
var demoYAML []byte

// DemoYAML returns the demo site config (a copy: callers may rewrite it).
func DemoYAML() []byte { return bytes.Clone(demoYAML) }
