"""The NSQ-compatible queue (`tidings queue`); `lookup_peer`: registration with lookupds."""
