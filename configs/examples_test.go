package configs

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every example config beside this package loads without errors or
// warnings, so the examples cannot rot.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5, "demo, coal-face, tank-farm, pipeline, ingest")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			summary, warnings, err := Check(f)
			require.NoError(t, err)
			require.Empty(t, warnings)
			require.NotEmpty(t, summary)
		})
	}
}
