package ingest

import (
	"context"
	"io"
	"net"
	"net/http"
)

// bodyConn is a connection of the Writer's HTTP transport that takes a
// request body straight from the caller's bytes.
//
// The transport writes a body of known length through io.LimitReader,
// which hides the body's WriteTo; past its 4 KiB buffer it hands the rest
// to the connection's ReadFrom, and a *net.TCPConn (neither splice nor
// sendfile applies to a reader) copies it through a 32 KiB buffer made
// for every request, 32 KiB at a time: at the reference load, a write a
// second of about 130 KB, a tenth of the gateway's garbage and four
// system calls where one does (docs/performance-history.md, item 65).
type bodyConn struct{ net.Conn }

// lenWriterTo is a body that knows what it has left and writes it itself
// (a *bytes.Reader, and sentBody, which embeds one).
type lenWriterTo interface {
	io.WriterTo
	Len() int
}

// ReadFrom writes r to the connection: a limited body that fits its
// limit in one write from its own bytes, anything else as the
// connection would.
func (c bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(lenWriterTo); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(c.Conn)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// withBodyConns has t's plain connections take bodies through bodyConn.
// (For https the transport puts TLS over the dialled connection, and TLS
// copies the body into its records anyway.)
func withBodyConns(t *http.Transport) {
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return bodyConn{c}, nil
	}
}
