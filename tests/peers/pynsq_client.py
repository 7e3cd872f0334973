"""pynsq driven by the tests as an unchanged NSQ client (run as a child process).

    python pynsq_client.py pub <nsqd-host:port> <topic> <n> [prefix]
    python pynsq_client.py sub <lookupd-host:port> <topic> <channel> <n> [req-every]

`pub` publishes with `nsq.Writer` and prints {"published": n}. `sub` runs an
`nsq.Reader` that finds nsqd through lookupd, requeues every req-every'th body once
(first attempt), finishes n distinct messages and prints
{"finished": [...sorted], "requeued": k, "max_attempts_seen": a}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import nsq
import tornado.ioloop


def publish(address: str, topic: str, n: int, prefix: str) -> None:
    writer = nsq.Writer([address])
    loop = tornado.ioloop.IOLoop.current()
    sent: list[int] = []

    def done(conn: Any, data: Any) -> None:
        if isinstance(data, nsq.Error):
            print(f"pynsq-client: {data}", file=sys.stderr)
            sys.exit(1)
        sent.append(1)
        if len(sent) == n:
            print(json.dumps({"published": n}), flush=True)
            loop.stop()

    def start() -> None:
        if not writer.conns:  # not connected yet
            loop.call_later(0.05, start)
            return
        for i in range(n):
            writer.pub(topic, f"{prefix}-{i}".encode(), callback=done)

    loop.call_later(0.05, start)
    loop.call_later(30, lambda: sys.exit("pynsq-client: publish timed out"))
    nsq.run()


def consume(lookupd: str, topic: str, channel: str, n: int, req_every: int) -> None:
    finished: set[str] = set()
    state = {"requeued": 0, "max_attempts": 0}
    loop = tornado.ioloop.IOLoop.current()

    def handle(message: nsq.Message) -> bool | None:
        body = message.body.decode()
        state["max_attempts"] = max(state["max_attempts"], message.attempts)
        index = int(body.rsplit("-", 1)[1])
        if req_every and message.attempts == 1 and index % req_every == 0:
            state["requeued"] += 1
            message.enable_async()
            message.requeue(backoff=False, delay=0)
            return None
        finished.add(body)
        if len(finished) == n:
            result = {
                "finished": sorted(finished),
                "requeued": state["requeued"],
                "max_attempts_seen": state["max_attempts"],
            }
            print(json.dumps(result), flush=True)
            loop.call_later(0.2, loop.stop)  # let the FIN leave the socket
        return True

    nsq.Reader(
        topic=topic,
        channel=channel,
        message_handler=handle,
        lookupd_http_addresses=[f"http://{lookupd}"],
        lookupd_poll_interval=1,
        max_in_flight=10,
    )
    loop.call_later(30, lambda: sys.exit(f"pynsq-client: timed out with {len(finished)}/{n}"))
    nsq.run()


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "pub":
        publish(args[0], args[1], int(args[2]), args[3] if len(args) > 3 else "pynsq")
    elif mode == "sub":
        consume(args[0], args[1], args[2], int(args[3]), int(args[4]) if len(args) > 4 else 0)
    else:
        sys.exit("usage: pynsq_client.py pub|sub ...")


if __name__ == "__main__":
    main()
