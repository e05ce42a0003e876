package cachetest

// A small RESP2 client, so that cachetest needs no Redis client library.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// ReplyError is an error reply from redis-server, such as "ERR unknown
// command 'FOO'". Do returns it wrapped, for errors.As; inside an array
// reply it is an element.
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// RESP limits, so that a corrupt reply fails instead of allocating wildly.
const (
	maxBulk  = 512 << 20 // redis-server's own proto-max-bulk-len default
	maxDepth = 64        // nesting of arrays; real replies use a few levels
	maxLine  = 64 << 10  // simple strings, errors and length headers
)

var errProtocol = errors.New("cachetest: malformed RESP reply")

// exchange sends cmds on one fresh connection to addr and reads one reply
// per command, all within timeout. A top-level error reply is returned as
// the error.
func exchange(addr string, timeout time.Duration, cmds ...[]string) ([]any, error) {
	deadline := time.Now().Add(timeout)
	conn, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var req []byte
	for _, c := range cmds {
		req = appendCommand(req, c)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, maxLine)
	replies := make([]any, 0, len(cmds))
	for range cmds {
		v, err := readReply(r)
		if err != nil {
			return nil, err
		}
		if e, ok := v.(ReplyError); ok {
			return nil, e
		}
		replies = append(replies, v)
	}
	return replies, nil
}

// appendCommand appends args to b as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// readReply reads one RESP2 reply from r. It returns io.EOF only when r ends
// before the reply starts; lines longer than r's buffer are rejected.
func readReply(r *bufio.Reader) (any, error) {
	return readValue(r, 0)
}

func readValue(r *bufio.Reader, depth int) (any, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: empty line", errProtocol)
	}
	switch line[0] {
	case '+':
		return string(line[1:]), nil
	case '-':
		return ReplyError(line[1:]), nil
	case ':':
		n, err := parseInt(line[1:])
		if err != nil {
			return nil, err
		}
		return n, nil
	case '$':
		n, err := parseInt(line[1:])
		switch {
		case err != nil:
			return nil, err
		case n == -1:
			return nil, nil
		case n < -1 || n > maxBulk:
			return nil, fmt.Errorf("%w: bulk length %d", errProtocol, n)
		}
		// Grow with the data received rather than trusting n up front.
		var b bytes.Buffer
		b.Grow(int(min(n, 64<<10)))
		if _, err := io.CopyN(&b, r, n+2); err != nil {
			return nil, unexpectedEOF(err)
		}
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			return nil, fmt.Errorf("%w: bulk string not ended by CRLF", errProtocol)
		}
		return string(b.Bytes()[:n]), nil
	case '*':
		n, err := parseInt(line[1:])
		switch {
		case err != nil:
			return nil, err
		case n == -1:
			return nil, nil
		case n < -1:
			return nil, fmt.Errorf("%w: array length %d", errProtocol, n)
		case depth >= maxDepth:
			return nil, fmt.Errorf("%w: arrays nested deeper than %d", errProtocol, maxDepth)
		}
		arr := make([]any, 0, min(n, 1024))
		for range n {
			v, err := readValue(r, depth+1)
			if err != nil {
				return nil, unexpectedEOF(err)
			}
			arr = append(arr, v)
		}
		return arr, nil
	default:
		return nil, fmt.Errorf("%w: unknown type %q", errProtocol, line[0])
	}
}

// readLine reads a CRLF-terminated line and returns it without the CRLF. The
// result is valid until the next read from r.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: line longer than %d bytes", errProtocol, r.Size())
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, fmt.Errorf("%w: line not ended by CRLF", errProtocol)
	}
	return line[:len(line)-2], nil
}

func parseInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad integer %q", errProtocol, b)
	}
	return n, nil
}

// unexpectedEOF turns io.EOF inside a reply into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
