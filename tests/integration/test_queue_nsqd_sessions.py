"""Scripted sessions whose answers were recorded from nsqd v1.3.0; tidings must match.

The transcripts below are what nsqd v1.3.0 (the release, run locally on free
ports) sent for each session: response and error frames in order, then
whether the connection stayed open or was closed. A fresh `tidings queue`
must send the same (IDENTIFY's JSON compared without `version`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import pytest

from tests.integration.support.queue import QueueProcess, RawClient, body, mpub_body, start_queue
from tidings.protocol.nsq import FrameType, MessageFrame

SESSIONS: list[tuple[str, bytes, list[str]]] = [
    ("pub", b"PUB t1\n" + body(b"x"), ["OK", "(open)"]),
    (
        "pub0",
        b"PUB t1\n" + struct.pack(">i", 0),
        ["E E_BAD_MESSAGE PUB invalid message body size 0", "(closed)"],
    ),
    (
        "badtopic",
        b"PUB a*b\n" + body(b"x"),
        ['E E_BAD_TOPIC PUB topic name "a*b" is not valid', "(closed)"],
    ),
    (
        "mpub_badtopic",
        b"MPUB a*b\n",
        ['E E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "a*b" is not valid', "(closed)"],
    ),
    ("invalid", b"HELLO\n", ["E E_INVALID invalid command HELLO", "(closed)"]),
    ("empty", b"\n", ["E E_INVALID invalid command ", "(closed)"]),
    ("rdy_init", b"RDY 1\n", ["E E_INVALID cannot RDY in current state", "(closed)"]),
    (
        "fin_init",
        b"FIN 0123456789abcdef\n",
        ["E E_INVALID cannot FIN in current state", "(closed)"],
    ),
    ("cls_init", b"CLS\n", ["E E_INVALID cannot CLS in current state", "(closed)"]),
    ("sub_short", b"SUB t\n", ["E E_INVALID SUB insufficient number of parameters", "(closed)"]),
    (
        "sub_badch",
        b"SUB t c*\n",
        ['E E_BAD_CHANNEL SUB channel name "c*" is not valid', "(closed)"],
    ),
    (
        "sub_then_rdy_big",
        b"SUB t c\nRDY 2501\n",
        ["OK", "E E_INVALID RDY count 2501 out of range 0-2500", "(closed)"],
    ),
    (
        "sub_rdy_neg",
        b"SUB t c\nRDY -1\n",
        ["OK", "E E_INVALID RDY could not parse count -1", "(closed)"],
    ),
    (
        "sub_rdy_x",
        b"SUB t c\nRDY x\n",
        ["OK", "E E_INVALID RDY could not parse count x", "(closed)"],
    ),
    ("sub_fin_short", b"SUB t c\nFIN 123\n", ["OK", "E E_INVALID invalid message ID", "(closed)"]),
    (
        "sub_fin_unknown",
        b"SUB t c\nFIN 0123456789abcdef\nNOP\nCLS\n",
        [
            "OK",
            "E E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight",
            "CLOSE_WAIT",
            "(open)",
        ],
    ),
    (
        "sub_req_unknown",
        b"SUB t c\nREQ 0123456789abcdef 10\n",
        ["OK", "E E_REQ_FAILED REQ 0123456789abcdef failed ID not in flight", "(open)"],
    ),
    (
        "sub_req_noparam",
        b"SUB t c\nREQ 0123456789abcdef\n",
        ["OK", "E E_INVALID REQ insufficient number of params", "(closed)"],
    ),
    (
        "sub_touch_unknown",
        b"SUB t c\nTOUCH 0123456789abcdef\n",
        ["OK", "E E_TOUCH_FAILED TOUCH 0123456789abcdef failed ID not in flight", "(open)"],
    ),
    (
        "sub_twice",
        b"SUB t c\nSUB t c\n",
        ["OK", "E E_INVALID cannot SUB in current state", "(closed)"],
    ),
    (
        "identify_bad",
        b"IDENTIFY\n" + body(b"nope"),
        ["E E_BAD_BODY IDENTIFY failed to decode JSON body", "(closed)"],
    ),
    (
        "identify_hb",
        b"IDENTIFY\n" + body(b'{"heartbeat_interval": 999}'),
        ["E E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid", "(closed)"],
    ),
    ("identify_plain", b"IDENTIFY\n" + body(b'{"client_id":"x"}'), ["OK", "(open)"]),
    (
        "identify_neg",
        b"IDENTIFY\n" + body(b'{"feature_negotiation":true}'),
        [
            '{"auth_required": false, "deflate": false, "deflate_level": 6, '
            '"max_deflate_level": 6, "max_msg_timeout": 900000, "max_rdy_count": 2500, '
            '"msg_timeout": 60000, "output_buffer_size": 16384, "output_buffer_timeout": 250, '
            '"sample_rate": 0, "snappy": false, "tls_v1": false}',
            "(open)",
        ],
    ),
    (
        "identify_msgto",
        b"IDENTIFY\n" + body(b'{"msg_timeout": 5}'),
        ["E E_BAD_BODY IDENTIFY msg timeout (5) is invalid", "(closed)"],
    ),
    (
        "identify_sample",
        b"IDENTIFY\n" + body(b'{"sample_rate": 100}'),
        ["E E_BAD_BODY IDENTIFY sample rate (100) is invalid", "(closed)"],
    ),
    (
        "identify_obs",
        b"IDENTIFY\n" + body(b'{"output_buffer_size": 10}'),
        ["E E_BAD_BODY IDENTIFY output buffer size (10) is invalid", "(closed)"],
    ),
    (
        "identify_hboff_sub",
        b"IDENTIFY\n" + body(b'{"heartbeat_interval": -1}') + b"SUB t c\n",
        ["OK", "E E_INVALID cannot SUB with heartbeats disabled", "(closed)"],
    ),
    ("auth", b"AUTH\n" + body(b"s"), ["E E_AUTH_DISABLED AUTH disabled", "(closed)"]),
    ("auth_param", b"AUTH x\n", ["E E_INVALID AUTH invalid number of parameters", "(closed)"]),
    ("dpub_bad", b"DPUB t x\n", ["E E_INVALID DPUB could not parse timeout x", "(closed)"]),
    (
        "dpub_range",
        b"DPUB t 3600001\n",
        ["E E_INVALID DPUB timeout 3600001 out of range 0-3600000", "(closed)"],
    ),
    ("dpub_ok", b"DPUB t 10\n" + body(b"x"), ["OK", "(open)"]),
    (
        "mpub_zero",
        b"MPUB t\n" + body(struct.pack(">i", 0)),
        ["E E_BAD_BODY MPUB invalid message count 0", "(closed)"],
    ),
    ("mpub_ok", b"MPUB t\n" + mpub_body([b"a", b"b"]), ["OK", "(open)"]),
    (
        "pub_big",
        b"PUB t\n" + struct.pack(">i", 1048577),
        ["E E_BAD_MESSAGE PUB message too big 1048577 > 1048576", "(closed)"],
    ),
    (
        "mpub_big",
        b"MPUB t\n" + struct.pack(">i", 5242881),
        ["E E_BAD_BODY MPUB body too big 5242881 > 5242880", "(closed)"],
    ),
    (
        "identify_big",
        b"IDENTIFY\n" + struct.pack(">i", 5242881),
        ["E E_BAD_BODY IDENTIFY body too big 5242881 > 5242880", "(closed)"],
    ),
    ("pub_noparam", b"PUB\n", ["E E_INVALID PUB insufficient number of parameters", "(closed)"]),
    (
        "cls_sub",
        b"SUB t c\nCLS\nRDY 5\nCLS\n",
        ["OK", "CLOSE_WAIT", "E E_INVALID cannot CLS in current state", "(closed)"],
    ),
]


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueProcess]:
    process = start_queue(tmp_path_factory.mktemp("nsqd-sessions"))
    yield process
    process.kill()


async def transcript(port: int, data: bytes) -> list[str]:
    client = await RawClient.connect(port)
    client.send(data)
    out: list[str] = []
    try:
        while True:
            frame = await client.frame(within=0.6)
            if frame.frame_type is FrameType.MESSAGE:
                out.append("MSG")
                continue
            text = frame.data
            if text.startswith(b"{"):
                fields = json.loads(text)
                fields.pop("version", None)
                text = json.dumps(fields, sort_keys=True).encode()
            prefix = "E " if frame.frame_type is FrameType.ERROR else ""
            out.append(prefix + text.decode())
    except TimeoutError:
        out.append("(open)")
    except ConnectionResetError:
        out.append("(closed)")
    finally:
        client.close()
    return out


@pytest.mark.parametrize(("name", "data", "expected"), SESSIONS, ids=[s[0] for s in SESSIONS])
async def test_same_answers_as_nsqd(
    queue: QueueProcess, name: str, data: bytes, expected: list[str]
) -> None:
    assert await transcript(queue.tcp_port, data) == expected


# A consumer's session, recorded from nsqd v1.3.0 (message ids left out: nsqd's are GUIDs).
NSQD_FLOW = [
    (0, b"OK"),  # PUB
    (0, b"OK"),  # SUB
    ("MSG", 1, b"one"),  # RDY 1
    ("MSG", 2, b"one"),  # REQ id 0: back at once, attempts 2
    "timeout",  # TOUCH: no answer
    (1, b"E_FIN_FAILED FIN <id> failed ID not in flight"),  # FIN twice
    (0, b"OK"),  # RDY 0, PUB: answered, nothing delivered
    "timeout",
    ("MSG", 1, b"two"),  # RDY 1
    (0, b"CLOSE_WAIT"),  # CLS
    (0, b"OK"),  # RDY 5 ignored after CLS, PUB answered
    "timeout",  # ... and nothing delivered
]


async def test_consumer_flow_matches_nsqd(queue: QueueProcess) -> None:
    client = await RawClient.connect(queue.tcp_port)
    out: list[object] = []

    async def step(within: float = 1.0) -> None:
        try:
            frame = await client.frame(within=within)
        except TimeoutError:
            out.append("timeout")
            return
        if frame.frame_type is FrameType.MESSAGE:
            message = MessageFrame.decode(frame.data)
            ids.append(message.message_id)
            out.append(("MSG", message.attempts, message.body))
        else:
            out.append(
                (int(frame.frame_type), frame.data.replace(ids[-1], b"<id>") if ids else frame.data)
            )

    ids: list[bytes] = []
    client.send(b"PUB flow\n" + body(b"one") + b"SUB flow c\nRDY 1\n")
    for _ in range(3):
        await step()
    client.send(b"REQ " + ids[-1] + b" 0\n")
    await step()
    client.send(b"TOUCH " + ids[-1] + b"\n")
    await step(0.3)
    client.send(b"FIN " + ids[-1] + b"\nFIN " + ids[-1] + b"\n")
    await step()
    client.send(b"RDY 0\nPUB flow\n" + body(b"two"))
    await step()
    await step(0.3)
    client.send(b"RDY 1\n")
    await step()
    client.send(b"CLS\n")
    await step()
    client.send(b"RDY 5\nPUB flow\n" + body(b"three"))
    await step()
    await step(0.5)
    client.close()
    assert out == NSQD_FLOW
