"""Fuzz the unidirectional connect request (URL parameter, SSE body, first message)."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tidings"]):
    from tidings.protocol.centrifuge.uni_codec import UniJsonCodec, connect_frame

CODEC = UniJsonCodec()
SEEDS = [
    b"",
    b"{}",
    b'{"token":"abc","subs":{"news":{"recover":true,"offset":4,"epoch":"e"}}}',
    b'{\n  "token": "abc",\n  "name": "sse"\n}',
    b'{"data":{"x":[1,2,{"y":"\\u00e9"}]}}',
]


def one_input(data: bytes) -> None:
    try:
        frame = connect_frame(data)
    except ValueError:
        return
    assert b"\n" not in frame and b"\r" not in frame, frame
    (command,) = CODEC.decode(frame)  # what the server then decodes must be one connect
    assert command.id == 1 and command.connect is not None


def main() -> None:
    from tests.fuzz.harness import run

    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
