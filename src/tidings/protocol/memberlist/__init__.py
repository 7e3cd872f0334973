"""HashiCorp memberlist, sans-I/O: wire messages, packet and stream codecs, and
SWIM + Lifeguard membership as a state machine driven by the caller's clock."""
