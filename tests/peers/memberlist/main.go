// Command memberlist-peer is the Go memberlist yardstick for tidings' tests.
//
//	memberlist-peer node -name a -bind 127.0.0.1 -port 7946 [-join host:port,...] [-keys b64,...] [-label L] [-meta M]
//	    runs a member and prints membership events as JSON lines; SIGTERM/SIGINT or a
//	    "leave" line on stdin makes it leave gracefully, "members" prints the view.
//	memberlist-peer vectors
//	    runs small in-memory clusters over a recording transport and prints every
//	    frame they exchange as JSON lines (scenario, kind, from, to, hex).
//	memberlist-peer lzw
//	    prints Go's compress/lzw (LSB, literal width 8) output for fixed inputs.
package main

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func emit(v any) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(v)
}

// nodeJSON describes a member in an event. (Node.State is not reported: memberlist
// does not keep it current in the Node handed to the event delegate.)
type nodeJSON struct {
	Event string `json:"event"`
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Port  uint16 `json:"port"`
	Meta  string `json:"meta"`
}

func describe(event string, n *memberlist.Node) nodeJSON {
	return nodeJSON{event, n.Name, n.Addr.String(), n.Port, string(n.Meta)}
}

// logLines turns memberlist's log output into {"event": "log"} JSON lines, so a test
// can tell a failure ("Marking X as failed") from a graceful leave.
type logLines struct{}

func (logLines) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		emit(map[string]string{"event": "log", "line": line})
	}
	return len(b), nil
}

type events struct{}

func (events) NotifyJoin(n *memberlist.Node)   { emit(describe("join", n)) }
func (events) NotifyLeave(n *memberlist.Node)  { emit(describe("leave", n)) }
func (events) NotifyUpdate(n *memberlist.Node) { emit(describe("update", n)) }

// delegate gives the member metadata and user state, and prints user messages.
type delegate struct {
	meta      []byte
	userState []byte
}

func (d *delegate) NodeMeta(limit int) []byte { return d.meta }
func (d *delegate) NotifyMsg(b []byte) {
	emit(map[string]string{"event": "user", "hex": hex.EncodeToString(b)})
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                 { return d.userState }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) > 0 {
		emit(map[string]string{"event": "remote-state", "hex": hex.EncodeToString(buf)})
	}
}

func keyring(keys string) *memberlist.Keyring {
	if keys == "" {
		return nil
	}
	var raw [][]byte
	for _, k := range strings.Split(keys, ",") {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			log.Fatalf("bad key %q: %v", k, err)
		}
		raw = append(raw, b)
	}
	ring, err := memberlist.NewKeyring(raw, raw[0])
	if err != nil {
		log.Fatalf("keyring: %v", err)
	}
	return ring
}

func runNode(args []string) {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	name := fs.String("name", "", "node name")
	bind := fs.String("bind", "127.0.0.1", "bind address")
	port := fs.Int("port", 7946, "bind port (UDP and TCP)")
	join := fs.String("join", "", "comma-separated host:port to join")
	keys := fs.String("keys", "", "comma-separated base64 keys, first is primary")
	label := fs.String("label", "", "cluster label")
	meta := fs.String("meta", "", "node metadata")
	_ = fs.Parse(args)

	conf := memberlist.DefaultLANConfig()
	conf.Name = *name
	conf.BindAddr = *bind
	conf.BindPort = *port
	conf.AdvertiseAddr = *bind
	conf.AdvertisePort = *port
	conf.Label = *label
	conf.Keyring = keyring(*keys)
	conf.Events = events{}
	conf.Delegate = &delegate{meta: []byte(*meta)}
	conf.LogOutput = logLines{}
	list, err := memberlist.Create(conf)
	if err != nil {
		log.Fatalf("create: %v", err)
	}
	if *join != "" {
		if _, err := list.Join(strings.Split(*join, ",")); err != nil {
			log.Fatalf("join: %v", err)
		}
	}
	emit(map[string]any{"event": "ready", "name": *name, "port": *port})

	leave := make(chan struct{}, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		leave <- struct{}{}
	}()
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			switch strings.TrimSpace(scanner.Text()) {
			case "leave":
				leave <- struct{}{}
			case "members":
				for _, m := range list.Members() {
					emit(describe("member", m))
				}
				emit(map[string]string{"event": "members-end"})
			}
		}
	}()
	<-leave
	_ = list.Leave(5 * time.Second)
	_ = list.Shutdown()
	emit(map[string]string{"event": "left", "name": *name})
}

// down holds the addresses of members "killed" in a scenario: packets to them are
// recorded (Go produced them) but dropped, and dialling them fails.
var (
	down   = map[string]bool{}
	downMu sync.Mutex
)

func isDown(addr string) bool {
	downMu.Lock()
	defer downMu.Unlock()
	return down[addr]
}

// recorder wraps a mock transport and prints every packet and stream write.
type recorder struct {
	*memberlist.MockTransport
	scenario string
	name     string
	streams  chan net.Conn
}

func (r *recorder) record(kind, to string, b []byte) {
	emit(map[string]string{
		"scenario": r.scenario, "kind": kind, "from": r.name, "to": to,
		"hex": hex.EncodeToString(b),
	})
}

func (r *recorder) WriteTo(b []byte, addr string) (time.Time, error) {
	return r.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (r *recorder) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	r.record("packet", a.Addr, b)
	if isDown(a.Addr) {
		return time.Now(), nil
	}
	// The mock delivers on unbuffered channels: two members answering each other at
	// once would block for ever, so deliver from a goroutine, as a network would.
	go func() { _, _ = r.MockTransport.WriteToAddress(b, a) }()
	return time.Now(), nil
}

func (r *recorder) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return r.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (r *recorder) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if isDown(a.Addr) {
		return nil, fmt.Errorf("%s is down", a.Addr)
	}
	conn, err := r.MockTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &recordedConn{Conn: conn, rec: r, to: a.Addr}, nil
}

func (r *recorder) StreamCh() <-chan net.Conn { return r.streams }

func (r *recorder) pump() {
	for conn := range r.MockTransport.StreamCh() {
		r.streams <- &recordedConn{Conn: conn, rec: r, to: "dialer"}
	}
}

// recordedConn records everything one side writes on a stream, as one frame at close.
type recordedConn struct {
	net.Conn
	rec  *recorder
	to   string
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (c *recordedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordedConn) Close() error {
	c.mu.Lock()
	if !c.done && c.buf.Len() > 0 {
		c.rec.record("stream", c.to, c.buf.Bytes())
	}
	c.done = true
	c.mu.Unlock()
	return c.Conn.Close()
}

func scenario(name string, compress bool, key []byte, label string) {
	network := &memberlist.MockNetwork{}
	var lists []*memberlist.Memberlist
	for i, node := range []string{"alpha", "beta"} {
		conf := memberlist.DefaultLANConfig()
		conf.Name = node
		conf.ProbeInterval = 100 * time.Millisecond
		conf.ProbeTimeout = 50 * time.Millisecond
		conf.GossipInterval = 20 * time.Millisecond
		conf.PushPullInterval = 0
		conf.EnableCompression = compress
		conf.SecretKey = key
		conf.Label = label
		conf.LogOutput = io.Discard
		conf.Delegate = &delegate{
			meta:      []byte(fmt.Sprintf("meta-%d", i)),
			userState: []byte(fmt.Sprintf("user-state-of-%s", node)),
		}
		rec := &recorder{
			MockTransport: network.NewTransport(node),
			scenario:      name, name: node,
			streams: make(chan net.Conn),
		}
		go rec.pump()
		conf.Transport = rec
		list, err := memberlist.Create(conf)
		if err != nil {
			log.Fatalf("%s: create: %v", name, err)
		}
		lists = append(lists, list)
	}
	first := lists[0].LocalNode()
	target := net.JoinHostPort(first.Addr.String(), fmt.Sprint(first.Port))
	if _, err := lists[1].Join([]string{"alpha/" + target}); err != nil {
		log.Fatalf("%s: join: %v", name, err)
	}
	time.Sleep(600 * time.Millisecond)
	_ = lists[1].Leave(time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, l := range lists {
		_ = l.Shutdown()
	}
}

// failureScenario: three members; gamma dies without leaving, so alpha and beta
// probe it indirectly (indirect ping, nack), suspect it and declare it dead.
func failureScenario(name string) {
	network := &memberlist.MockNetwork{}
	var lists []*memberlist.Memberlist
	var addrs []string
	for _, node := range []string{"alpha", "beta", "gamma"} {
		conf := memberlist.DefaultLANConfig()
		conf.Name = node
		conf.ProbeInterval = 100 * time.Millisecond
		conf.ProbeTimeout = 40 * time.Millisecond
		conf.GossipInterval = 20 * time.Millisecond
		conf.PushPullInterval = 0
		conf.EnableCompression = false
		conf.DisableTcpPings = true
		conf.LogOutput = io.Discard
		rec := &recorder{
			MockTransport: network.NewTransport(node),
			scenario:      name, name: node,
			streams: make(chan net.Conn),
		}
		go rec.pump()
		conf.Transport = rec
		list, err := memberlist.Create(conf)
		if err != nil {
			log.Fatalf("%s: create: %v", name, err)
		}
		lists = append(lists, list)
		local := list.LocalNode()
		addrs = append(addrs, net.JoinHostPort(local.Addr.String(), fmt.Sprint(local.Port)))
	}
	for _, l := range lists[1:] {
		if _, err := l.Join([]string{"alpha/" + addrs[0]}); err != nil {
			log.Fatalf("%s: join: %v", name, err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	downMu.Lock()
	down[addrs[2]] = true
	downMu.Unlock()
	_ = lists[2].Shutdown()
	time.Sleep(2 * time.Second)
	for _, l := range lists[:2] {
		_ = l.Shutdown()
	}
}

func runVectors() {
	key16 := []byte("0123456789abcdef")
	key32 := []byte("0123456789abcdef0123456789abcdef")
	scenario("plain", false, nil, "")
	scenario("compressed", true, nil, "")
	scenario("encrypted", false, key16, "")
	scenario("encrypted-compressed", true, key32, "")
	scenario("labeled", false, nil, "tidings")
	scenario("labeled-encrypted", false, key16, "tidings")
	failureScenario("failure")
}

func lzwOf(b []byte) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, 8)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func runLZW() {
	inputs := map[string][]byte{
		"empty":  {},
		"one":    {'a'},
		"repeat": bytes.Repeat([]byte("abc"), 2000),
		"text":   []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 300)),
	}
	// Pseudo-random bytes (a fixed LCG) fill the 4096-entry table and force clear codes.
	noise := make([]byte, 8000)
	x := uint32(12345)
	for i := range noise {
		x = x*1103515245 + 12345
		noise[i] = byte(x >> 16)
	}
	inputs["noise"] = noise
	allBytes := make([]byte, 0, 512)
	for i := 0; i < 512; i++ {
		allBytes = append(allBytes, byte(i))
	}
	inputs["all-bytes"] = allBytes
	for _, name := range []string{"empty", "one", "repeat", "text", "noise", "all-bytes"} {
		emit(map[string]string{
			"name": name, "plain": hex.EncodeToString(inputs[name]),
			"lzw": hex.EncodeToString(lzwOf(inputs[name])),
		})
	}
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: memberlist-peer node|vectors|lzw [flags]")
	}
	switch os.Args[1] {
	case "node":
		runNode(os.Args[2:])
	case "vectors":
		runVectors()
	case "lzw":
		runLZW()
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}
