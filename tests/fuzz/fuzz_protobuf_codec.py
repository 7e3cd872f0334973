"""Fuzz the protobuf command decoder: frames -> commands, or MalformedFrame and nothing else."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidings"]):
    from tidings.protocol.centrifuge import messages as m
    from tidings.protocol.centrifuge.protobuf_codec import (
        MalformedFrame,
        ProtobufCodec,
        decode_message,
        encode_message,
        uvarint,
    )

CODEC = ProtobufCodec()


def _frame(*commands: m.Command) -> bytes:
    return b"".join(uvarint(len(b)) + b for b in (encode_message(c) for c in commands))


SEEDS = [
    _frame(
        m.Command(
            id=1,
            connect=m.ConnectRequest(
                token="t", name="py", subs={"c": m.SubscribeRequest(recover=True, offset=2)}
            ),
        )
    ),
    _frame(
        m.Command(id=2, subscribe=m.SubscribeRequest(channel="chat", epoch="e", offset=2**64 - 1))
    ),
    _frame(m.Command(id=3, publish=m.PublishRequest(channel="c", data=m.raw(b'{"a":1}')))),
    _frame(
        m.Command(
            id=4, history=m.HistoryRequest(channel="c", limit=-1, since=m.StreamPosition(5, "e"))
        ),
        m.Command(id=5, ping=m.PingRequest()),
        m.Command(),
    ),
]


def one_input(data: bytes) -> None:
    try:
        commands = CODEC.decode(data)
    except MalformedFrame:
        return
    for command in commands:
        assert isinstance(command, m.Command)
        again = decode_message(encode_message(command), m.Command)
        assert again == command, (command, again)


def main() -> None:
    from tests.fuzz.harness import run

    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
