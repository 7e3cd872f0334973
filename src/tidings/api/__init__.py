"""The server API for business back ends (Centrifugo-compatible), on its own port."""
