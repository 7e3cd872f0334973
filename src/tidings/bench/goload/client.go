package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

var (
	pubToken  = []byte(`"pub":`)
	pingToken = []byte(`{}`)
	stampKey  = []byte(`"t":`)
	pongFrame = clientFrame(pingToken)
	// A close frame with code 1000, masked with the all-zero key.
	closeFrame = []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
)

// maxFrame bounds the frames a connection waits for: a server announcing a bigger one
// is dropped instead of growing the buffer without end.
const maxFrame = 16 << 20

var errFrameTooBig = errors.New("frame larger than 16 MiB")

// maxSamples bounds the latency samples one process keeps between two reads.
const maxSamples = 400_000

// tally is what every connection of this process received.
type tally struct {
	pubs      atomic.Int64
	lost      atomic.Int64
	mu        sync.Mutex
	latencies []int64 // microseconds
}

func (t *tally) addLatencies(us []int64) {
	t.mu.Lock()
	if room := maxSamples - len(t.latencies); room > 0 {
		if len(us) > room {
			us = us[:room]
		}
		t.latencies = append(t.latencies, us...)
	}
	t.mu.Unlock()
}

// clientFrame is a final text frame masked with the all-zero key (RFC 6455 allows
// any key; the server only needs the mask bit), so the payload goes out as is.
func clientFrame(payload []byte) []byte {
	n := len(payload)
	var header []byte
	switch {
	case n < 126:
		header = []byte{0x81, 0x80 | byte(n)}
	case n < 65536:
		header = []byte{0x81, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		header = make([]byte, 10)
		header[0], header[1] = 0x81, 0x80|127
		binary.BigEndian.PutUint64(header[2:], uint64(n))
	}
	frame := make([]byte, 0, len(header)+4+n)
	frame = append(frame, header...)
	frame = append(frame, 0, 0, 0, 0)
	return append(frame, payload...)
}

func upgradeRequest(host string, port int, path string) []byte {
	return []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
		"Sec-WebSocket-Version: 13\r\n\r\n", path, host, port))
}

// frame is one server frame found in a buffer.
type frame struct {
	opcode  byte
	payload []byte
}

// nextFrame parses the frame at the start of buf; ok is false while it is incomplete.
// Server frames are never masked.
func nextFrame(buf []byte) (f frame, size int, ok bool, err error) {
	if len(buf) < 2 {
		return f, 0, false, nil
	}
	length, hlen := uint64(buf[1]&0x7f), 2
	switch length {
	case 126:
		if len(buf) < 4 {
			return f, 0, false, nil
		}
		length, hlen = uint64(binary.BigEndian.Uint16(buf[2:4])), 4
	case 127:
		if len(buf) < 10 {
			return f, 0, false, nil
		}
		length, hlen = binary.BigEndian.Uint64(buf[2:10]), 10
	}
	if length > maxFrame {
		return f, 0, false, errFrameTooBig
	}
	if uint64(len(buf)-hlen) < length {
		return f, 0, false, nil
	}
	end := hlen + int(length)
	return frame{buf[0] & 0x0f, buf[hlen:end]}, end, true, nil
}

// client is one connection: upgrade, connect with a token, subscribe, then count.
type client struct {
	conn    net.Conn
	tally   *tally
	sampled bool
	pubs    atomic.Int64
	closing atomic.Bool
}

type reply struct {
	ID    int             `json:"id"`
	Error json.RawMessage `json:"error"`
}

// openClient connects, authenticates and subscribes within limit, then counts
// publications on its own goroutine until the connection ends.
func openClient(dialer *net.Dialer, addr string, request []byte, token string,
	channels []string, t *tally, sampled bool, limit time.Duration) (*client, error) {
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, tally: t, sampled: sampled}
	rest, err := c.setup(request, token, channels, limit)
	if err != nil {
		conn.Close()
		return nil, err
	}
	go c.stream(rest)
	return c, nil
}

// setup runs the handshake and the connect and subscribe commands; it returns the
// bytes read past the last reply.
func (c *client) setup(request []byte, token string, channels []string,
	limit time.Duration) ([]byte, error) {
	if err := c.conn.SetDeadline(time.Now().Add(limit)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(request); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	upgraded := false
	lastID := 1 + len(channels)
	for {
		n, err := c.conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			return nil, fmt.Errorf("closed during setup: %w", err)
		}
		if !upgraded {
			end := bytes.Index(buf, []byte("\r\n\r\n"))
			if end < 0 {
				if len(buf) > 16384 {
					return nil, errors.New("upgrade response too long")
				}
				continue
			}
			if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
				line, _, _ := bytes.Cut(buf, []byte("\r\n"))
				return nil, fmt.Errorf("upgrade refused: %q", line)
			}
			buf = append(buf[:0], buf[end+4:]...)
			upgraded = true
			connect, _ := json.Marshal(map[string]any{
				"id": 1, "connect": map[string]any{"token": token, "name": "bench"},
			})
			if _, err := c.conn.Write(clientFrame(connect)); err != nil {
				return nil, err
			}
		}
		for {
			f, size, ok, err := nextFrame(buf)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			done, err := c.setupFrame(f, channels, lastID)
			buf = buf[size:]
			if err != nil {
				return nil, err
			}
			if done {
				return buf, c.conn.SetDeadline(time.Time{})
			}
		}
	}
}

func (c *client) setupFrame(f frame, channels []string, lastID int) (bool, error) {
	if f.opcode == 0x8 {
		return false, fmt.Errorf("closed by server: %q", f.payload)
	}
	if f.opcode != 0x1 {
		return false, nil
	}
	for _, line := range bytes.Split(f.payload, []byte("\n")) {
		if bytes.Equal(line, pingToken) {
			c.conn.Write(pongFrame)
			continue
		}
		if !bytes.HasPrefix(line, []byte(`{"id":`)) {
			continue
		}
		var r reply
		if err := json.Unmarshal(line, &r); err != nil {
			return false, fmt.Errorf("bad reply %q: %w", line, err)
		}
		if len(r.Error) > 0 {
			return false, fmt.Errorf("error reply: %s", r.Error)
		}
		if r.ID == 1 && len(channels) > 0 {
			lines := make([][]byte, len(channels))
			for i, ch := range channels {
				lines[i], _ = json.Marshal(map[string]any{
					"id": 2 + i, "subscribe": map[string]any{"channel": ch},
				})
			}
			if _, err := c.conn.Write(clientFrame(bytes.Join(lines, []byte("\n")))); err != nil {
				return false, err
			}
		}
		if r.ID == lastID {
			return true, nil
		}
	}
	return false, nil
}

func (c *client) count(n int) {
	if n > 0 {
		c.pubs.Add(int64(n))
		c.tally.pubs.Add(int64(n))
	}
}

// stream counts publications until the connection ends. Unsampled connections count
// the token `"pub":` in the raw byte stream (once per publication push); sampled ones
// parse frames and read the send stamps.
func (c *client) stream(rest []byte) {
	if c.sampled {
		c.streamSampled(rest)
	} else {
		c.streamRaw(rest)
	}
	if !c.closing.Load() {
		c.tally.lost.Add(1)
	}
}

func (c *client) streamRaw(rest []byte) {
	buf := make([]byte, 4096)
	var counter pubCounter
	c.count(counter.feed(rest))
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			data := buf[:n]
			c.count(counter.feed(data))
			if bytes.Contains(data, pingToken) {
				c.conn.Write(pongFrame)
			}
		}
		if err != nil {
			return
		}
	}
}

// pubCounter counts the token `"pub":` in a byte stream read in pieces.
type pubCounter struct {
	// The last (up to 5) bytes of the stream so far, then room for 5 more: a token
	// split between two reads lies in tail + the next read's first 5 bytes, and any
	// token found there crosses the boundary (neither side alone holds its 6 bytes).
	joined [10]byte
	tail   int
}

// feed counts the tokens that end in data.
func (p *pubCounter) feed(data []byte) int {
	found := bytes.Count(data, pubToken)
	if p.tail > 0 {
		k := copy(p.joined[p.tail:p.tail+5], data)
		found += bytes.Count(p.joined[:p.tail+k], pubToken)
	}
	if len(data) >= 5 {
		p.tail = copy(p.joined[:5], data[len(data)-5:])
		return found
	}
	all := append(p.joined[:p.tail:p.tail], data...)
	if len(all) > 5 {
		all = all[len(all)-5:]
	}
	p.tail = copy(p.joined[:5], all)
	return found
}

func (c *client) streamSampled(rest []byte) {
	buf := append(make([]byte, 0, 8192), rest...)
	chunk := make([]byte, 4096)
	for {
		for {
			f, size, ok, err := nextFrame(buf)
			if err != nil {
				c.conn.Close()
				return
			}
			if !ok {
				break
			}
			if f.opcode == 0x1 {
				c.stamps(f.payload)
			}
			buf = buf[size:]
		}
		buf = append(make([]byte, 0, len(buf)+8192), buf...)
		n, err := c.conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			return
		}
	}
}

// stamps counts the publications of one frame and keeps their publish-to-receive times.
func (c *client) stamps(payload []byte) {
	now := nowMonotonicNs()
	c.count(bytes.Count(payload, pubToken))
	var us []int64
	for rest := payload; ; {
		i := bytes.Index(rest, stampKey)
		if i < 0 {
			break
		}
		rest = rest[i+len(stampKey):]
		if len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		var sent int64
		digits := 0
		for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
			sent = sent*10 + int64(rest[digits]-'0')
			digits++
		}
		if digits > 0 {
			us = append(us, (now-sent)/1000)
		}
	}
	if len(us) > 0 {
		c.tally.addLatencies(us)
	}
	if bytes.Contains(payload, pingToken) {
		c.conn.Write(pongFrame)
	}
}

// close leaves politely: a close frame, then FIN.
func (c *client) close() {
	c.closing.Store(true)
	c.conn.Write(closeFrame)
	c.conn.Close()
}

// abort drops the connection without a close frame.
func (c *client) abort() {
	c.closing.Store(true)
	c.conn.Close()
}
