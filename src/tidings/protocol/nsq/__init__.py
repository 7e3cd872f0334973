"""NSQ's wire protocols, sans-I/O (`lookup`: nsqlookupd's registration protocol)."""
