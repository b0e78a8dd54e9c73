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
	other := classify(mb.ErrBadCRC)
	require.False(t, IsException(other) || isTimeout(other))
	require.Equal(t, "link: bad crc", reason(other))
}
