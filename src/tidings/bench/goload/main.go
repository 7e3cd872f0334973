// goload: the compiled client process behind `tidings bench --client go`.
//
// It holds up to ~15,000 Centrifuge v2 JSON connections (one goroutine each) and
// speaks the same line protocol over stdin/stdout as the Python worker
// (src/tidings/bench/worker.py), so the Python orchestrator drives either:
//
//	progress <opened>                      while connecting, once a second
//	ready <opened> <failed> <seconds>      when every connection is set up
//	stats      -> stats <pubs> <lost> <open> <min per conn> <max per conn>
//	latencies  -> latencies <JSON list of µs> (samples since the last call)
//	reset      -> reset (zero the counters)
//	churn R S  -> churned <closed> <opened> <failed> <seconds>
//	quit       -> exits
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	host        string
	port        int
	path        string
	conns       int
	channels    string
	spread      int
	secret      string
	name        string
	sampleEvery int
	concurrency int
	maxSeconds  float64
	sourceIP    string
}

type worker struct {
	opts    options
	addr    string
	dialer  *net.Dialer
	request []byte
	fixed   []string
	tally   tally
	failed  atomic.Int64
	serial  atomic.Int64
	mu      sync.Mutex
	clients []*client // oldest first
	out     sync.Mutex
}

func (w *worker) say(format string, args ...any) {
	w.out.Lock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
	w.out.Unlock()
}

func (w *worker) identity() (string, []string, bool) {
	serial := w.serial.Add(1)
	index := serial - 1
	user := fmt.Sprintf("%s-%d", w.opts.name, index)
	token := hs256Token(w.opts.secret, user, time.Now().Unix()+86400)
	channels := append([]string(nil), w.fixed...)
	for j := 0; j < w.opts.spread; j++ {
		channels = append(channels, fmt.Sprintf("room%d", (index*7+int64(j)*131)%1000))
	}
	sampled := w.opts.sampleEvery > 0 && serial%int64(w.opts.sampleEvery) == 0
	return token, channels, sampled
}

func (w *worker) openOne() bool {
	token, channels, sampled := w.identity()
	for attempt := 0; attempt < 3; attempt++ {
		c, err := openClient(w.dialer, w.addr, w.request, token, channels, &w.tally, sampled,
			20*time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		w.mu.Lock()
		w.clients = append(w.clients, c)
		w.mu.Unlock()
		return true
	}
	w.failed.Add(1)
	return false
}

func (w *worker) open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.clients)
}

func (w *worker) openAll() {
	t0 := time.Now()
	if w.opts.concurrency < 1 {
		w.opts.concurrency = 1
	}
	slots := make(chan struct{}, w.opts.concurrency)
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				w.say("progress %d", w.open())
			}
		}
	}()
	for i := 0; i < w.opts.conns; i++ {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			w.openOne()
		}()
	}
	wg.Wait()
	close(done)
	w.say("progress %d", w.open())
	w.say("ready %d %d %.3f", w.open(), w.failed.Load(), time.Since(t0).Seconds())
}

// churn replaces connections at rate a second for seconds, paced from the start.
func (w *worker) churn(rate, seconds float64) string {
	start := time.Now()
	closed := 0
	failedBefore := w.failed.Load()
	total := int(rate * seconds)
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		w.mu.Lock()
		var oldest *client
		if len(w.clients) > 0 {
			oldest = w.clients[0]
			w.clients = w.clients[1:]
		}
		w.mu.Unlock()
		if oldest != nil {
			oldest.close()
			closed++
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.openOne() }()
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
	}
	failed := w.failed.Load() - failedBefore
	return fmt.Sprintf("churned %d %d %d %.3f", closed, int64(total)-failed, failed,
		time.Since(start).Seconds())
}

func (w *worker) stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lo, hi int64
	for i, c := range w.clients {
		n := c.pubs.Load()
		if i == 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return fmt.Sprintf("stats %d %d %d %d %d", w.tally.pubs.Load(), w.tally.lost.Load(),
		len(w.clients), lo, hi)
}

func (w *worker) latencies() string {
	w.tally.mu.Lock()
	samples := w.tally.latencies
	w.tally.latencies = nil
	w.tally.mu.Unlock()
	if samples == nil {
		samples = []int64{}
	}
	encoded, _ := json.Marshal(samples)
	return "latencies " + string(encoded)
}

func (w *worker) reset() {
	w.tally.pubs.Store(0)
	w.tally.mu.Lock()
	w.tally.latencies = nil
	w.tally.mu.Unlock()
	w.mu.Lock()
	for _, c := range w.clients {
		c.pubs.Store(0)
	}
	w.mu.Unlock()
}

func (w *worker) serve() {
	w.openAll()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<20)
	for in.Scan() {
		words := strings.Fields(in.Text())
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "quit":
			w.abortAll()
			return
		case "stats":
			w.say("%s", w.stats())
		case "latencies":
			w.say("%s", w.latencies())
		case "reset":
			w.reset()
			w.say("reset")
		case "churn":
			if len(words) < 3 {
				w.say("churned 0 0 0 0")
				continue
			}
			rate, err1 := strconv.ParseFloat(words[1], 64)
			seconds, err2 := strconv.ParseFloat(words[2], 64)
			if err1 != nil || err2 != nil || rate <= 0 || seconds < 0 {
				w.say("churned 0 0 0 0")
				continue
			}
			w.say("%s", w.churn(rate, seconds))
		}
	}
	w.abortAll()
}

func (w *worker) abortAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		c.abort()
	}
}

func parseOptions() options {
	var o options
	flag.StringVar(&o.host, "host", "127.0.0.1", "server host")
	flag.IntVar(&o.port, "port", 0, "server client port")
	flag.StringVar(&o.path, "path", "/connection/websocket", "WebSocket path")
	flag.IntVar(&o.conns, "conns", 0, "connections")
	flag.StringVar(&o.channels, "channels", "", "comma-separated channels every conn joins")
	flag.IntVar(&o.spread, "spread", 0, "extra channels per conn out of 1000")
	flag.StringVar(&o.secret, "secret", "", "token HMAC secret")
	flag.StringVar(&o.name, "name", "g0", "user id prefix")
	flag.IntVar(&o.sampleEvery, "sample-every", 0, "every Nth conn reads stamps")
	flag.IntVar(&o.concurrency, "concurrency", 64, "connects in flight")
	flag.Float64Var(&o.maxSeconds, "max-seconds", 300, "exit after this long")
	flag.StringVar(&o.sourceIP, "source-ip", "", "local address to connect from "+
		"(loopback has ~28k ephemeral ports per source and destination)")
	flag.Parse()
	return o
}

func main() {
	o := parseOptions()
	if o.port <= 0 || o.conns < 0 {
		fmt.Fprintln(os.Stderr, "goload: --port and --conns are required")
		os.Exit(2)
	}
	if o.secret == "" {
		o.secret = "bench"
	}
	w := &worker{
		opts:    o,
		addr:    net.JoinHostPort(o.host, strconv.Itoa(o.port)),
		request: upgradeRequest(o.host, o.port, o.path),
		dialer:  &net.Dialer{Timeout: 20 * time.Second},
	}
	if o.sourceIP != "" {
		ip := net.ParseIP(o.sourceIP)
		if ip == nil {
			fmt.Fprintf(os.Stderr, "goload: bad --source-ip %q\n", o.sourceIP)
			os.Exit(2)
		}
		w.dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	for _, ch := range strings.Split(o.channels, ",") {
		if ch != "" {
			w.fixed = append(w.fixed, ch)
		}
	}
	time.AfterFunc(time.Duration(o.maxSeconds*float64(time.Second)), func() { os.Exit(0) })
	w.serve()
}
