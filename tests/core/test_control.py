"""Commands between nodes: typed, round-trip, and anything else is refused at the edge."""

from __future__ import annotations

import msgspec
import pytest

from tidings.core.control import (
    BroadcastShare,
    DisconnectUser,
    Heartbeat,
    SubscribeUser,
    decode_command,
    encode_command,
)


@pytest.mark.parametrize(
    "command",
    [
        DisconnectUser(user="u", code=3000, reason="x", whitelist=["c1"]),
        SubscribeUser(user="u", channel="news", since_offset=4, since_epoch="e"),
        BroadcastShare(task="t", data=b'{"a":1}', rate=2.5, tags={"k": "v"}),
        Heartbeat(
            uid="n",
            name="node",
            version="1",
            started_at=1.0,
            num_clients=1,
            num_users=1,
            num_channels=2,
            num_subs=3,
            addresses=["127.0.0.1:8000"],
            broadcasts={"t": {"sent": 1.0}},
        ),
    ],
)
def test_commands_round_trip(command: object) -> None:
    assert decode_command(encode_command(command)) == command  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", msgspec.msgpack.encode({"type": "Nope"}), msgspec.msgpack.encode([1, 2])],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_command(data)
