"""Sans-I/O wire protocols: bytes in, typed messages out, and back.

Nothing under this package performs I/O, imports asyncio, or imports any
other tidings package; a test enforces it.
"""
