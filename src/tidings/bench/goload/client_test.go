package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every way of cutting a stream into pieces counts each token once.
func TestPubCounterAcrossReads(t *testing.T) {
	stream := []byte(strings.Repeat(`{"push":{"channel":"fan","pub":{"data":{}}}}`+"\n", 3) +
		`"pub":"pub":x"pu`)
	want := bytes.Count(stream, pubToken)
	for size := 1; size <= len(stream); size++ {
		var p pubCounter
		got := 0
		for i := 0; i < len(stream); i += size {
			end := i + size
			if end > len(stream) {
				end = len(stream)
			}
			got += p.feed(stream[i:end])
		}
		if got != want {
			t.Fatalf("pieces of %d bytes: counted %d, want %d", size, got, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("x"), n)
		masked := clientFrame(payload)
		// The server's frames are the same without the mask bit and key.
		server := append([]byte{masked[0], masked[1] & 0x7f}, masked[2:len(masked)-n-4]...)
		server = append(server, payload...)
		f, size, ok, err := nextFrame(server)
		if err != nil || !ok || size != len(server) || f.opcode != 1 ||
			!bytes.Equal(f.payload, payload) {
			t.Fatalf("%d bytes: ok=%v err=%v size=%d opcode=%d", n, ok, err, size, f.opcode)
		}
		if _, _, ok, _ := nextFrame(server[:len(server)-1]); ok && n > 0 {
			t.Fatalf("%d bytes: an incomplete frame was accepted", n)
		}
	}
}

// A server announcing a huge frame is refused at once, not buffered for.
func TestHugeFrameRefused(t *testing.T) {
	header := []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0}
	if _, _, ok, err := nextFrame(header); ok || err != errFrameTooBig {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
}

func TestTokenIsHS256(t *testing.T) {
	token := hs256Token("secret", "u1", 1700000000)
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		t.Fatalf("token %q", token)
	}
}
