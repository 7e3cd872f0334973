"""The node: sessions, indexes, channel rules, and the wiring between them."""
