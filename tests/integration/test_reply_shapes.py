"""Differential: tidings' replies have the shapes of Centrifugo v6.9.1's, command by command.

`tests/fixtures/centrifugo_v6_reply_shapes.json` holds the shapes of
Centrifugo's replies to one scripted session (every client command and API
method, with errors; see `support/reply_shapes.py`). The first test runs the
same session against `tidings serve` and compares; deliberate differences
are listed in `DELIBERATE` with their reason (and in docs/api.md,
"Differences from Centrifugo"). The second runs it against the Centrifugo
binary (tests/peers/bin/centrifugo) and checks that the fixture is current;
with `TIDINGS_RECORD_SHAPES=1` it writes the fixture instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, free_port
from tests.integration.support.reply_shapes import (
    TIDINGS_SETTINGS,
    centrifugo_config,
    differences,
    record,
    without_publication_epochs,
)
from tests.integration.test_proxy_centrifugo import CENTRIFUGO, _wait_port

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "centrifugo_v6_reply_shapes.json"

pytestmark = [pytest.mark.timeout(90)]


def _json_error(code: int) -> Callable[[Any, Any], bool]:
    """Centrifugo's HTTP status, with a JSON error body where Centrifugo sends plain text."""

    def check(want: Any, got: Any) -> bool:
        error = got["body"]["error"]
        return bool(got["status"] == want["status"] and error["code"] == code and error["message"])

    return check


def _replies(*replies: Any) -> Callable[[Any, Any], bool]:
    return lambda want, got: bool(got == {"replies": list(replies)} and "close" in want)


def _info_additions(want: Any, got: Any) -> bool:
    nodes = got["body"]["result"]["nodes"]
    extra = [{k: v for k, v in n.items() if k not in ("process", "draining")} for n in nodes]
    return bool(extra == want["body"]["result"]["nodes"] and "process" in nodes[0])


_UNKNOWN = {"id": "<number>", "error": {"code": 104, "message": "method not found"}}

#: Steps where tidings deliberately answers otherwise (docs/api.md, "Differences from
#: Centrifugo"): step -> (a check of what tidings sends given Centrifugo's shape, why).
DELIBERATE: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "api_error_bad_json": (_json_error(107), "the error says what is wrong, as JSON"),
    "api_error_bad_key": (_json_error(101), "the error says what is wrong, as JSON"),
    "api_error_unknown_method": (_json_error(104), "the error says what is wrong, as JSON"),
    "api_error_no_channel": (
        lambda want, got: got["status"] == want["status"] and got["body"]["error"]["code"] == 107,
        "error 107 says which field is missing",
    ),
    "api_info": (_info_additions, "info adds process cpu/rss and draining"),
    "unknown_command": (_replies(_UNKNOWN), "answered 104 instead of a disconnect"),
    "command_without_method": (_replies(_UNKNOWN), "answered 104 instead of a disconnect"),
    "ping_with_id": (
        _replies({"id": "<number>", "ping": {}}),
        "the ping command (older clients) is answered",
    ),
    "send": (_replies(), "without a handler, `send` messages are dropped, not a disconnect"),
    "send_with_id": (_replies(), "as `send`"),
}


@pytest.fixture
def centrifugo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    port = free_port()
    path = tmp_path / "centrifugo-shapes.json"
    path.write_text(json.dumps(centrifugo_config(port)))
    log = (tmp_path / "centrifugo-shapes.log").open("wb")
    proc = subprocess.Popen([str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log)
    try:
        _wait_port(port, proc)
        yield f"ws://127.0.0.1:{port}/connection/websocket", f"http://127.0.0.1:{port}/api"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def tidings(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(TIDINGS_SETTINGS)


def recorded() -> dict[str, Any]:
    shapes: dict[str, Any] = json.loads(FIXTURE.read_text())
    return shapes


async def test_tidings_replies_have_centrifugo_shapes(tidings: ServerProcess) -> None:
    want = without_publication_epochs(recorded())
    got = await record(tidings.ws_url, tidings.api_url)
    for step, (check, why) in DELIBERATE.items():
        assert check(want[step], got[step]), f"{step} ({why}) changed: {got[step]}"
        got[step] = want[step]
    diff = differences(want, got)
    assert not diff, "reply shapes differ from Centrifugo v6:\n" + "\n".join(diff)


async def test_fixture_is_what_centrifugo_sends(centrifugo: tuple[str, str]) -> None:
    shapes = await record(*centrifugo)
    if os.environ.get("TIDINGS_RECORD_SHAPES") == "1":
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    diff = differences(recorded(), shapes)
    assert not diff, "re-record with TIDINGS_RECORD_SHAPES=1:\n" + "\n".join(diff)
