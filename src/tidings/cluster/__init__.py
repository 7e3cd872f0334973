"""Cluster membership (memberlist gossip) and, later, the gateway dispatcher."""
