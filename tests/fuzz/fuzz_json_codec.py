"""Fuzz the JSON command decoder: frames -> commands, or MalformedFrame and nothing else."""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports(include=["tidings"]):
    import msgspec

    from tidings.protocol.centrifuge.json_codec import JsonCodec, MalformedFrame
    from tidings.protocol.centrifuge.messages import Command
    from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json

CODEC = JsonCodec()
SEEDS = [
    b'{"id":1,"connect":{"token":"t","name":"js","subs":{"c":{"recover":true,"offset":3}}}}',
    b'{"id":2,"subscribe":{"channel":"chat","recover":true,"epoch":"e","offset":1}}',
    b'{"id":3,"publish":{"channel":"chat","data":{"text":"hi","n":[1,2.5,null,true]}}}',
    b'{"id":4,"history":{"channel":"c","limit":-1,"since":{"offset":1,"epoch":"e"}}}',
    b'{"id":5,"rpc":{"method":"ack","data":{"channel":"#u","offset":2}}}\n{}',
    b'{"id":6,"presence":{"channel":"c"}}\n{"id":7,"ping":{}}\n{"send":{"data":"x"}}',
]


def one_input(data: bytes) -> None:
    try:
        commands = CODEC.decode(data)
    except MalformedFrame:
        return
    for command in commands:
        assert isinstance(command, Command)
        again = msgspec.json.decode(msgspec.json.encode(command), type=Command)
        assert again == command, (command, again)
        for request in (command.publish, command.rpc, command.send, command.connect):
            payload = getattr(request, "data", None)
            if payload is not None and len(payload):
                with contextlib.suppress(InvalidPayload):
                    compact_json(payload)


def main() -> None:
    from tests.fuzz.harness import run

    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
