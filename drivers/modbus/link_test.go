package modbus

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	mb "github.com/simonvetter/modbus"
	"github.com/stretchr/testify/require"
)

func TestLibWriter(t *testing.T) {
	var buf bytes.Buffer
	w := libWriter{zerolog.New(&buf).Level(zerolog.DebugLevel)}
	_, err := w.Write([]byte("modbus-client(tcp://h:502) [error]: boom\n"))
	require.NoError(t, err)
	_, err = w.Write([]byte("modbus-client(tcp://h:502) [warn]: late frame\n"))
	require.NoError(t, err)
	require.Equal(t,
		`{"level":"warn","detail":"modbus-client(tcp://h:502) [error]: boom","message":"modbus library"}`+"\n"+
			`{"level":"debug","detail":"modbus-client(tcp://h:502) [warn]: late frame","message":"modbus library"}`+"\n",
		buf.String())
}

func TestClassify(t *testing.T) {
	for _, ex := range exceptionCodes {
		err := classify(fmt.Errorf("wrapped: %w", ex.err))
		var ee *ExceptionError
		require.True(t, errors.As(err, &ee), ex.err)
		require.Equal(t, ex.code, ee.Code)
		require.True(t, IsException(err))
		require.False(t, isTimeout(err))
	}
	require.Equal(t, "modbus exception 11 (gateway target device failed to respond)", classify(mb.ErrGWTargetFailedToRespond).Error())
	to := classify(mb.ErrRequestTimedOut)
	require.ErrorIs(t, to, ErrTimeout)
	require.False(t, IsException(to))
	require.Equal(t, "timeout", reason(to))
	// Codes the library has no sentinel for come as its text.
	for _, code := range []uint8{7, 12, 255} {
		lib := fmt.Errorf("unknown exception code (%v)", code) // as simonvetter/modbus words it
		err := classify(fmt.Errorf("wrapped: %w", lib))
		var ee *ExceptionError
		require.True(t, errors.As(err, &ee), code)
		require.Equal(t, code, ee.Code)
		require.Equal(t, fmt.Sprintf("modbus exception %d (not a code the Modbus library knows)", code), reason(err))
	}
	other := classify(mb.ErrBadCRC)
	require.False(t, IsException(other) || isTimeout(other))
	require.Equal(t, "link: bad crc", reason(other))
}
