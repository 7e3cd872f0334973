// gohub: a fan-out peer for `tidings bench` on gorilla/websocket.
//
// It speaks just enough of the Centrifuge v2 JSON protocol for the load
// generator (see ../README.md): connect and subscribe commands get empty
// successful replies (tokens are not verified), and POST /api/publish or
// /api/batch on the API port pushes {"push":{"channel":C,"pub":{"data":D}}}
// to the channel's subscribers. Each connection has a reader goroutine and a
// writer goroutine with a buffered queue; the writer joins whatever is queued
// into one frame with newlines, as tidings coalesces.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type conn struct {
	ws   *websocket.Conn
	send chan []byte
}

type hub struct {
	mu       sync.RWMutex
	channels map[string]map[*conn]struct{}
}

func (h *hub) subscribe(c *conn, ch string) {
	h.mu.Lock()
	subs := h.channels[ch]
	if subs == nil {
		subs = make(map[*conn]struct{})
		h.channels[ch] = subs
	}
	subs[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) drop(c *conn) {
	h.mu.Lock()
	for _, subs := range h.channels {
		delete(subs, c)
	}
	h.mu.Unlock()
}

func (h *hub) publish(ch string, data json.RawMessage) {
	msg, _ := json.Marshal(map[string]any{
		"push": map[string]any{"channel": ch, "pub": map[string]any{"data": data}},
	})
	h.mu.RLock()
	for c := range h.channels[ch] {
		select {
		case c.send <- msg:
		default: // a slow client loses messages rather than stalling the hub
		}
	}
	h.mu.RUnlock()
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
}

type command struct {
	ID        uint32          `json:"id"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe *struct {
		Channel string `json:"channel"`
	} `json:"subscribe"`
}

func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws, send: make(chan []byte, 256)}
	go c.writer()
	defer func() {
		h.drop(c)
		close(c.send)
	}()
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return
		}
		for _, line := range bytes.Split(frame, []byte("\n")) {
			var cmd command
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &cmd) != nil || cmd.ID == 0 {
				continue // pongs and anything unknown
			}
			var reply string
			switch {
			case cmd.Connect != nil:
				reply = fmt.Sprintf(`{"id":%d,"connect":{"client":"%p","version":"gohub"}}`, cmd.ID, c)
			case cmd.Subscribe != nil:
				h.subscribe(c, cmd.Subscribe.Channel)
				reply = fmt.Sprintf(`{"id":%d,"subscribe":{}}`, cmd.ID)
			default:
				reply = fmt.Sprintf(`{"id":%d}`, cmd.ID)
			}
			c.send <- []byte(reply)
		}
	}
}

func (c *conn) writer() {
	defer c.ws.Close()
	for msg := range c.send {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return
		}
		w.Write(msg)
		for n := len(c.send); n > 0; n-- { // coalesce what is already queued
			w.Write([]byte{'\n'})
			w.Write(<-c.send)
		}
		if w.Close() != nil {
			return
		}
	}
}

type publishReq struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func (h *hub) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/api/publish":
		var p publishReq
		if json.Unmarshal(body, &p) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		h.publish(p.Channel, p.Data)
	case "/api/batch":
		var b struct {
			Commands []struct {
				Publish *publishReq `json:"publish"`
			} `json:"commands"`
		}
		if json.Unmarshal(body, &b) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		for _, c := range b.Commands {
			if c.Publish != nil {
				h.publish(c.Publish.Channel, c.Publish.Data)
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"result":{}}`))
}

func main() {
	port := flag.Int("port", 8000, "client port")
	apiPort := flag.Int("api-port", 9000, "API port")
	maxSeconds := flag.Float64("max-seconds", 600, "exit after this many seconds")
	flag.Parse()
	h := &hub{channels: make(map[string]map[*conn]struct{})}
	go func() {
		time.Sleep(time.Duration(*maxSeconds * float64(time.Second)))
		os.Exit(0)
	}()
	api := http.NewServeMux()
	api.HandleFunc("/api/", h.serveAPI)
	api.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	go func() { log.Fatal(http.ListenAndServe("127.0.0.1:"+strconv.Itoa(*apiPort), api)) }()
	ws := http.NewServeMux()
	ws.HandleFunc("/connection/websocket", h.serveWS)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+strconv.Itoa(*port), ws))
}
