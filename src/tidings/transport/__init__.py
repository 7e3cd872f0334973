"""Adapters from sockets to sessions: they write bytes and close with a code."""
