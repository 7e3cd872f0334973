"""Log formatting: JSON lines and the request id of the call being served."""

from __future__ import annotations

import json
import logging

from tidings.logs import JsonFormatter, RequestIdFilter, TextFormatter, request_id


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("tidings.x", logging.WARNING, __file__, 1, message, args, exc_info)
    RequestIdFilter().filter(rec)
    return rec


def test_json_lines_parse_and_carry_the_request_id() -> None:
    token = request_id.set("rid-1")
    try:
        line = JsonFormatter().format(record('odd "quotes"\nand %s', "ünïcode", exc=True))
    finally:
        request_id.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "tidings.x"
    assert entry["message"] == 'odd "quotes"\nand ünïcode'
    assert entry["request_id"] == "rid-1"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")


def test_outside_a_call_there_is_no_request_id() -> None:
    assert "request_id" not in json.loads(JsonFormatter().format(record("x")))
    assert "request_id" not in TextFormatter().format(record("x"))
    token = request_id.set("rid-2")
    try:
        assert TextFormatter().format(record("x")).endswith("[request_id=rid-2]")
    finally:
        request_id.reset(token)
