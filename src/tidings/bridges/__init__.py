"""Bridges between the push system and the NSQ-compatible queue (docs/bridges.md).

`inbound`: queue topics into channels; `upstream`: client publications into
queue topics; `connection`, `consumer` and `producer`: tidings' own small
asyncio NSQ client on `tidings.protocol.nsq`; `node_bridges`: what a node
starts and stops from its settings.
"""
