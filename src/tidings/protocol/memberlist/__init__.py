"""HashiCorp memberlist, sans-I/O: wire messages, packet and stream codecs, and
SWIM + Lifeguard membership as a state machine driven by the caller's clock.

- `messages`: every message typed (`Ping`, `Alive`, `PushPull`, ...); `gomsgpack`:
  msgpack exactly as Go's memberlist writes it.
- `packet` / `stream`: the layers around messages on UDP and TCP (label,
  encryption with a `keyring.Keyring`, CRC, `lzw` compression, compound).
- `membership.Membership`: the member itself (probes, suspicion, gossip,
  push-pull), with `member` (records, events, transition table), `suspicion`,
  `awareness`, `broadcasts`, `versions` (push-pull compatibility) and `config`
  (memberlist's LAN defaults); `outgoing`: what it asks the caller to do.
- `errors`: the one exception family every decoder sticks to.
"""
