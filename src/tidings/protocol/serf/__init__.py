"""HashiCorp Serf on top of memberlist, sans-I/O: node tags in memberlist metadata and
the Serf messages that travel as memberlist user messages (user events, join and leave
intents). Enough to sit in a Serf cluster and hear its events."""
