"""`tidings debug tasks|profile|memory`: the debug API methods from the command line."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_API = "http://127.0.0.1:9000"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "debug",
        help="inspect a running node: task stacks, CPU profile, memory",
        description=(
            "Call a running node's debug API methods (they need the API key: --api-key or "
            "TIDINGS_API_KEY)."
        ),
    )
    parser.add_argument("what", choices=["tasks", "profile", "memory"])
    parser.add_argument("--api", default=DEFAULT_API, help=f"API address (default {DEFAULT_API})")
    parser.add_argument("--api-key", default=None, help="API key (default: $TIDINGS_API_KEY)")
    parser.add_argument("--seconds", type=float, default=5.0, help="profile/trace duration (<= 60)")
    parser.add_argument(
        "--format", choices=["pstats", "svg"], default="pstats", help="profile format"
    )
    parser.add_argument("--limit", type=int, default=None, help="rows to show")
    parser.add_argument(
        "--output", type=Path, default=None, help="write the SVG / pstats file here"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON result")


def run(args: argparse.Namespace) -> int:
    key = args.api_key if args.api_key is not None else os.environ.get("TIDINGS_API_KEY", "")
    body: dict[str, Any] = {}
    if args.what in ("profile", "memory"):
        body["seconds"] = args.seconds
    if args.what == "profile":
        body["format"] = args.format
    if args.limit is not None:
        body["limit"] = args.limit
    try:
        result = _call(args.api, key, f"debug_{args.what}", body, timeout=args.seconds + 30)
    except _CallFailed as exc:
        print(f"tidings debug: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if args.what == "tasks":
        print(_tasks_text(result))
    elif args.what == "memory":
        print(_memory_text(result))
    else:
        return _profile_out(result, args.output)
    return 0


class _CallFailed(Exception):
    pass


def _call(api: str, key: str, method: str, body: dict[str, Any], timeout: float) -> Any:
    url = f"{api.rstrip('/')}/api/{method}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _CallFailed(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _CallFailed(f"{url}: {exc}") from None
    if "error" in reply:
        error = reply["error"]
        raise _CallFailed(f"error {error.get('code')}: {error.get('message')}")
    return reply["result"]


def _tasks_text(result: dict[str, Any]) -> str:
    lines = [f"{result['total']} tasks"]
    for task in result["tasks"]:
        waits = " -> ".join(task["awaiting"])
        lines.append(
            f"\n{task['name']}  {task['coroutine']}" + (f"  [awaits {waits}]" if waits else "")
        )
        lines += [f"    {frame}" for frame in task["stack"]]
    return "\n".join(lines)


def _memory_text(result: dict[str, Any]) -> str:
    lines = [
        f"traced {result['traced_bytes']} bytes (peak {result['peak_bytes']}) "
        f"over {result['seconds']}s; top allocations:",
    ]
    for row in result["top"]:
        where = " <- ".join(row["traceback"])
        lines.append(f"{row['size']:>12} B {row['count']:>8} blocks  {where}")
    return "\n".join(lines)


def _profile_out(result: dict[str, Any], output: Path | None) -> int:
    if result["format"] == "svg":
        if output is None:
            print(result["svg"])
        else:
            output.write_text(result["svg"])
            print(f"flame graph of {result['samples']} samples written to {output}")
        return 0
    if output is not None:
        output.write_bytes(base64.b64decode(result["pstats_b64"]))
        print(f"pstats written to {output} (python -m pstats {output})")
    print(result["text"])
    return 0
