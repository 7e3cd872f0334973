// gonsq-client: a small go-nsq program the tidings tests drive as an unchanged NSQ client.
//
//	gonsq-client pub -nsqd 127.0.0.1:4150 -topic t -n 10
//	gonsq-client sub -lookupd 127.0.0.1:4161 -topic t -channel c -n 10 -req-every 3
//
// `pub` publishes n messages ("<prefix>-<i>") and prints {"published": n}.
// `sub` consumes until n distinct messages were finished. Every req-every'th body is
// requeued (REQ) on its first attempt and finished on its redelivery. It prints
// {"finished": [...bodies], "requeued": k, "max_attempts_seen": a} as JSON on stdout.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nsqio/go-nsq"
)

type subResult struct {
	Finished        []string `json:"finished"`
	Requeued        int      `json:"requeued"`
	MaxAttemptsSeen uint16   `json:"max_attempts_seen"`
}

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: gonsq-client pub|sub [flags]")
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet(mode, flag.ExitOnError)
	nsqd := flags.String("nsqd", "", "nsqd TCP address")
	lookupd := flags.String("lookupd", "", "nsqlookupd HTTP address (sub)")
	topic := flags.String("topic", "", "topic")
	channel := flags.String("channel", "", "channel (sub)")
	n := flags.Int("n", 1, "number of messages")
	prefix := flags.String("prefix", "gonsq", "body prefix (pub)")
	reqEvery := flags.Int("req-every", 0, "requeue every k-th message once (sub)")
	maxInFlight := flags.Int("max-in-flight", 10, "max in flight (sub)")
	timeout := flags.Duration("timeout", 30*time.Second, "give up after")
	if err := flags.Parse(os.Args[2:]); err != nil {
		log.Fatal(err)
	}
	var out interface{}
	var err error
	switch mode {
	case "pub":
		out, err = publish(*nsqd, *topic, *prefix, *n)
	case "sub":
		out, err = consume(*nsqd, *lookupd, *topic, *channel, *n, *reqEvery, *maxInFlight, *timeout)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}

func publish(addr, topic, prefix string, n int) (interface{}, error) {
	producer, err := nsq.NewProducer(addr, nsq.NewConfig())
	if err != nil {
		return nil, err
	}
	defer producer.Stop()
	producer.SetLoggerLevel(nsq.LogLevelWarning)
	for i := 0; i < n; i++ {
		if err := producer.Publish(topic, []byte(prefix+"-"+strconv.Itoa(i))); err != nil {
			return nil, err
		}
	}
	return map[string]int{"published": n}, nil
}

func consume(nsqdAddr, lookupdAddr, topic, channel string, n, reqEvery, maxInFlight int,
	timeout time.Duration) (interface{}, error) {
	config := nsq.NewConfig()
	config.MaxInFlight = maxInFlight
	config.LookupdPollInterval = time.Second
	config.DefaultRequeueDelay = 0
	consumer, err := nsq.NewConsumer(topic, channel, config)
	if err != nil {
		return nil, err
	}
	consumer.SetLoggerLevel(nsq.LogLevelWarning)
	var mu sync.Mutex
	finished := map[string]bool{}
	result := subResult{Finished: []string{}}
	done := make(chan struct{})
	consumer.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		body := string(m.Body)
		if m.Attempts > result.MaxAttemptsSeen {
			result.MaxAttemptsSeen = m.Attempts
		}
		if reqEvery > 0 && m.Attempts == 1 && wantsRequeue(body, reqEvery) {
			result.Requeued++
			m.DisableAutoResponse()
			m.RequeueWithoutBackoff(0)
			return nil
		}
		if !finished[body] {
			finished[body] = true
			result.Finished = append(result.Finished, body)
			if len(finished) == n {
				close(done)
			}
		}
		return nil
	}))
	if lookupdAddr != "" {
		err = consumer.ConnectToNSQLookupd(lookupdAddr)
	} else {
		err = consumer.ConnectToNSQD(nsqdAddr)
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		mu.Lock()
		got := len(finished)
		mu.Unlock()
		return nil, fmt.Errorf("timed out with %d of %d messages", got, n)
	}
	consumer.Stop()
	<-consumer.StopChan
	sort.Strings(result.Finished)
	return result, nil
}

// wantsRequeue picks every k-th message by the number after the last dash in its body.
func wantsRequeue(body string, every int) bool {
	i, err := strconv.Atoi(body[strings.LastIndex(body, "-")+1:])
	return err == nil && i%every == 0
}
