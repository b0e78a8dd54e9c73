package ingest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeadLetterNotHTMLEscaped: a dead letter carries the original payload
// and the error as they were, < > & included (docs/mqtt.md: payloads are
// not HTML-escaped), with no trailing newline.
func TestDeadLetterNotHTMLEscaped(t *testing.T) {
	d := deadLetter{site: "site1", topic: "canary/v1/site1/readings/dev0",
		payload: []byte(`{"seq":"<x&y>"}`), reason: `decode readings: seq: "<x&y>" is not a number`}
	b, err := d.json("ingest&1")
	require.NoError(t, err)
	require.Equal(t, `{"topic":"canary/v1/site1/readings/dev0","error":"decode readings: seq: \"<x&y>\" is not a number",`+
		`"payload":"{\"seq\":\"<x&y>\"}","ingest":"ingest&1"}`, string(b))
	var back struct{ Topic, Error, Payload, Ingest string }
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, string(d.payload), back.Payload)
	require.Equal(t, d.reason, back.Error)
}
