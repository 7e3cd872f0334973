"""Helpers shared by the integration tests, one module per purpose.

`ws`: a raw WebSocket client of the JSON protocol (exact close codes and error
replies); `api`: plain aiohttp calls of the server API (for the methods and
error bodies `cent` does not show); `sdk`: centrifuge-python clients that
record every event; `servers`: servers with settings conftest cannot write.
"""
