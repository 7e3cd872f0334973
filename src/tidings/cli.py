"""The `tidings` command: argv -> settings -> node. Thin on purpose."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from tidings import __version__
from tidings.config import (
    CHANNEL_OPTION_DOCS,
    SETTING_DOCS,
    Settings,
    load,
    table_assignments,
)
from tidings.errors import ConfigError

_TABLES = ("channel", "namespaces")


def _serve_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run a node",
        description=(
            "Run a tidings node. Settings come from defaults, then --config FILE (TOML), "
            "then TIDINGS_<NAME> environment variables, then these flags (flags win)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML settings file")
    defaults = Settings()
    for field in Settings.__struct_fields__:
        if field in _TABLES:
            continue
        default = getattr(defaults, field)
        flag = "--" + field.replace("_", "-")
        help_text = f"{SETTING_DOCS[field]} [env TIDINGS_{field.upper()}; default {default!r}]"
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=field,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(flag, dest=field, default=None, metavar="VALUE", help=help_text)
    options = ", ".join(sorted(CHANNEL_OPTION_DOCS))
    parser.add_argument(
        "--channel",
        dest="channel_options",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help=(
            "option of channels without a namespace [env TIDINGS_CHANNEL as JSON]; "
            f"options: {options}"
        ),
    )
    parser.add_argument(
        "--namespace",
        dest="namespace_options",
        action="append",
        default=[],
        metavar="NS.OPTION=VALUE",
        help="option of namespace NS, e.g. chat.history_size=100 [env TIDINGS_NAMESPACES as JSON]",
    )


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        value = getattr(args, field, None)
        if field not in _TABLES and value is not None:
            flags[field] = value
    if args.channel_options:
        flags["channel"] = table_assignments(args.channel_options, with_namespace=False)
    if args.namespace_options:
        flags["namespaces"] = table_assignments(args.namespace_options, with_namespace=True)
    return flags


def _complete_secrets(settings: Settings) -> list[str]:
    """Fill an empty API key or token secret with a random one; say so."""
    notes: list[str] = []
    if not settings.api_key and not settings.api_insecure:
        settings.api_key = secrets.token_urlsafe(24)
        notes.append(f"  API key (generated for this run): {settings.api_key}")
    if not settings.token_hmac_secret:
        settings.token_hmac_secret = secrets.token_urlsafe(32)
        notes.append(f"  token HMAC secret (generated for this run): {settings.token_hmac_secret}")
        sample = jwt.encode(
            {"sub": "demo", "exp": int(time.time()) + 86400},
            settings.token_hmac_secret,
            algorithm="HS256",
        )
        notes.append(f"  a 24 h connection token for user 'demo': {sample}")
    return notes


def serve(args: argparse.Namespace) -> int:
    try:
        settings = load(args.config, os.environ, _flags(args))
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    notes = _complete_secrets(settings)
    from tidings.server import run

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        runner = asyncio.run
    if notes:
        print("\n".join(notes), flush=True)
    try:
        runner(run(settings))
    except OSError as exc:
        print(f"tidings: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description="tidings real-time push server")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
