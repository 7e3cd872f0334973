"""Bridges: outside sources that publish into channels, and channels' data sent out.

The queue bridges (docs/bridges.md): `inbound` (queue topics into channels),
`upstream` (client publications into queue topics), on tidings' own small
asyncio NSQ client (`connection`, `consumer`, `producer`) built on the
sans-I/O `tidings.protocol.nsq`; `node_bridges` starts and stops them with
the node.
"""
