// Pins nsqd and nsqlookupd v1.3.0, the real NSQ servers the queue and lookup tests
// compare against. Built by scripts/build-nsq-peers.sh; no Go source of our own here.
module tidings/tests/peers/nsq

go 1.22

require github.com/nsqio/nsq v1.3.0

// The same replacement nsq's own go.mod makes (replace directives only apply to the
// main module, so it has to be repeated here for the apps to build).
replace github.com/judwhite/go-svc => github.com/mreiferson/go-svc v1.2.2-0.20210815184239-7a96e00010f6
