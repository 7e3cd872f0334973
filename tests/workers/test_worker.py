"""The worker process: its settings line on stdin, and what it does with a bad one."""

from __future__ import annotations

import subprocess
import sys

from tidings.config import build
from tidings.workers.worker import decode_settings, encode_settings


def test_settings_cross_the_pipe_unchanged() -> None:
    settings = build(
        {
            "workers": 3,
            "name": "n-w1",
            "engine": "redis",
            "redis_address": ["unix:///tmp/x/redis.sock"],
            "namespaces": {"d": {"durable": True, "history_size": 10, "history_ttl": "1m"}},
            "proxy": {"connect": {"endpoint": "http://app/connect", "timeout": "2s"}},
            "shutdown_timeout": "3s",
        }
    )
    line = encode_settings(settings)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_settings(line) == settings


def test_a_bad_settings_line_is_one_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings.workers.worker", "--name", "x-w1", "--status-fd", "1"],
        input=b'{"port": "not a number"}\n',
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"tidings worker x-w1: bad settings on stdin" in done.stderr
    assert b"Traceback" not in done.stderr
