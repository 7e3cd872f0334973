"""tidings: a real-time push and messaging server.

Clients speak the Centrifuge v2 protocol (the official SDKs work unchanged);
business back ends use a Centrifugo-compatible HTTP API on a separate port.
"""

__version__ = "0.1.0"
