"""`WebSocketSession` on fakes of picows' transport: pongs while backed up, and sockets
that are dropped when a closed connection does not drain."""

from __future__ import annotations

import asyncio

from picows import WSMsgType
from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

from tests.adversarial.fuzz_transport import session
from tidings.settings import Settings

QUICK = Settings(client_close_timeout=0.05)


async def test_only_the_latest_ping_is_answered_while_backed_up() -> None:
    ws_session, ws, _ = session()
    ws_session.pause_writing()
    for n in range(1000):
        frame = _make_test_ws_frame(WSMsgType.PING, str(n).encode(), True, False)
        ws_session.on_ws_frame(ws, frame)  # type: ignore[arg-type]
    assert ws.pongs == []
    ws_session.resume_writing()
    assert ws.pongs == [b"999"]
    ws_session.resume_writing()
    assert ws.pongs == [b"999"]


async def test_a_closed_connection_that_does_not_drain_is_dropped() -> None:
    ws_session, ws, _ = session(settings=QUICK)
    ws_session.close(3008, "slow")
    assert ws.closes == [3008]
    await asyncio.sleep(0.2)
    assert ws.underlying_transport.closing


async def test_dropped_also_when_picows_sent_the_close_itself() -> None:
    """picows answers a protocol error with its own close and a graceful disconnect."""
    ws_session, ws, _ = session(settings=QUICK)
    ws.is_close_frame_sent = True
    ws_session.close(3012, "no pong")
    assert ws.closes == []
    await asyncio.sleep(0.2)
    assert ws.underlying_transport.closing
