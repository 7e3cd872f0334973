"""The NSQ-compatible queue (`tidings queue`): nsqd's protocols over a durable log."""
