"""The `tidings` command: argv -> settings -> node. Thin on purpose."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidings import __version__, logs
from tidings.channel_options import CHANNEL_OPTION_DOCS
from tidings.config import TABLE_KEYS, load, parse_scalar, table_assignments, text_value
from tidings.errors import ConfigError
from tidings.settings import SETTING_DOCS, Settings, worker_count


def _serve_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run a node",
        description=(
            "Run a tidings node. Settings come from defaults, then --config FILE (TOML), "
            "then TIDINGS_<NAME> environment variables, then these flags (flags win)."
        ),
    )
    parser.add_argument("--config", type=Path, help="TOML settings file")
    defaults = Settings()
    for field in Settings.__struct_fields__:
        if field in TABLE_KEYS:
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
    for flag, dest, example, env in (
        ("--proxy", "proxy_options", "connect.endpoint=http://app/connect", "TIDINGS_PROXY"),
        ("--proxies", "proxies_options", "billing.endpoint=http://billing/rpc", "TIDINGS_PROXIES"),
        (
            "--rpc-namespace",
            "rpc_namespace_options",
            "billing.proxy_name=billing",
            "TIDINGS_RPC_NAMESPACES",
        ),
    ):
        parser.add_argument(
            flag,
            dest=dest,
            action="append",
            default=[],
            metavar="PATH=VALUE",
            help=f"proxy setting (see docs/proxy.md), e.g. {example} [env {env} as JSON]",
        )
    parser.add_argument(
        "--queue-consume",
        dest="queue_consume_options",
        action="append",
        default=[],
        metavar="JSON",
        help="a queue topic to publish into channels (docs/bridges.md), e.g. "
        '\'{"topic": "push", "nsqd_tcp_addresses": ["127.0.0.1:4150"]}\' (repeatable) '
        "[env TIDINGS_QUEUE_CONSUME as a JSON list]",
    )
    parser.add_argument(
        "--queue-rpc-topic",
        dest="queue_rpc_topic_options",
        action="append",
        default=[],
        metavar="NS=TOPIC",
        help="RPCs '<NS>:...' are PUB'd to queue topic TOPIC (docs/bridges.md) "
        "[env TIDINGS_QUEUE_RPC_TOPICS as JSON]",
    )


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        value = getattr(args, field, None)
        if field not in TABLE_KEYS and value is not None:
            flags[field] = text_value(field, value) if isinstance(value, str) else value
    if args.channel_options:
        flags["channel"] = table_assignments(args.channel_options, with_namespace=False)
    if args.namespace_options:
        flags["namespaces"] = table_assignments(args.namespace_options, with_namespace=True)
    for field, pairs in (
        ("proxy", args.proxy_options),
        ("proxies", args.proxies_options),
        ("rpc_namespaces", args.rpc_namespace_options),
    ):
        if pairs:
            flags[field] = _dotted(pairs)
    if args.queue_consume_options:
        flags["queue_consume"] = [
            _json_flag("queue_consume", v) for v in args.queue_consume_options
        ]
    if args.queue_rpc_topic_options:
        flags["queue_rpc_topics"] = _dotted(args.queue_rpc_topic_options)
    return flags


def _json_flag(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(field, f"not JSON: {exc}") from None


def _dotted(pairs: list[str]) -> dict[str, Any]:
    """`['connect.timeout=2s']` as nested tables `{'connect': {'timeout': '2s'}}`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key or "" in key.split("."):
            raise ConfigError(key or pair, f"expected PATH=VALUE, got {pair!r}")
        *parents, leaf = key.split(".")
        table = out
        for part in parents:
            table = table.setdefault(part, {})
        table[leaf] = parse_scalar(text)
    return out


def _complete_secrets(settings: Settings) -> list[str]:
    """Fill an empty API key or token secret with a random one; say so."""
    notes: list[str] = []
    if not settings.api_key and not settings.api_insecure:
        settings.api_key = secrets.token_urlsafe(24)
        notes.append(f"  API key (generated for this run): {settings.api_key}")
    asymmetric = settings.token_rsa_public_key or settings.token_ecdsa_public_key
    if not settings.token_hmac_secret and not asymmetric:
        settings.token_hmac_secret = secrets.token_urlsafe(32)
        notes.append(f"  token HMAC secret (generated for this run): {settings.token_hmac_secret}")
        import jwt

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
    logs.configure(settings.log_level, settings.log_format)
    notes = _complete_secrets(settings)
    if worker_count(settings) > 1:
        from tidings.workers.supervisor import Supervisor

        return Supervisor(settings, notes).run()
    from tidings.server import Server, run

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        import asyncio

        runner = asyncio.run
    try:
        server = Server(settings)  # checks what settings alone cannot (keys, store)
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    if notes:
        print("\n".join(notes), flush=True)
    try:
        runner(run(server))
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tidings: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def _token_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "token",
        help="print a connection or subscription token",
        description=(
            "Print a JWT for development and the docs. Signs with token_hmac_secret from "
            "--config / TIDINGS_TOKEN_HMAC_SECRET / --secret, or with --private-key (RSA/ECDSA)."
        ),
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (for token_hmac_secret)")
    parser.add_argument("--secret", help="HMAC secret (overrides the settings)")
    parser.add_argument("--private-key", type=Path, help="PEM private key file (RSA or ECDSA)")
    parser.add_argument("--alg", default="", help="algorithm (default HS256, RS256 or ES256)")
    parser.add_argument("--user", default="", help="user id (sub); empty for anonymous")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until exp (0: no exp)")
    parser.add_argument("--channel", default="", help="make a subscription token for CHANNEL")
    parser.add_argument("--channels", default="", help="comma-separated server-side channels")
    parser.add_argument("--info", default="", help="JSON info attached to the client")
    parser.add_argument("--audience", default="", help="aud claim")
    parser.add_argument("--issuer", default="", help="iss claim")


def token(args: argparse.Namespace) -> int:
    claims: dict[str, Any] = {"sub": args.user, "iat": int(time.time())}
    if args.ttl:
        claims["exp"] = int(time.time()) + args.ttl
    if args.channel:
        claims["channel"] = args.channel
    if args.channels:
        claims["channels"] = [c for c in args.channels.split(",") if c]
    if args.audience:
        claims["aud"] = args.audience
    if args.issuer:
        claims["iss"] = args.issuer
    if args.info:
        try:
            claims["info"] = json.loads(args.info)
        except json.JSONDecodeError as exc:
            print(f"tidings: --info is not JSON: {exc}", file=sys.stderr)
            return 2
    if args.private_key is not None:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = args.private_key.read_text()
        try:
            # The key type, not the PEM label: PKCS#8 files say "PRIVATE KEY" for EC keys too.
            loaded = load_pem_private_key(key.encode(), None)
        except (ValueError, TypeError) as exc:
            print(f"tidings: --private-key: not a usable PEM private key: {exc}", file=sys.stderr)
            return 2
        is_ec = isinstance(loaded, ec.EllipticCurvePrivateKey)
        alg = args.alg or ("ES256" if is_ec else "RS256")
    else:
        try:
            secret = args.secret or load(args.config, os.environ, {}).token_hmac_secret
        except ConfigError as exc:
            print(f"tidings: {exc}", file=sys.stderr)
            return 2
        if not secret:
            print(
                "tidings: no token_hmac_secret configured (use --secret or --config)",
                file=sys.stderr,
            )
            return 2
        key, alg = secret, args.alg or "HS256"
    import jwt

    print(jwt.encode(claims, key, algorithm=alg))
    return 0


def _queue_tool_parsers(sub: Any) -> None:
    """`tidings lookup` and `tidings queue-admin` (NSQ's lookupd and admin roles)."""
    from tidings.lookup import command as lookup_command
    from tidings.lookup.admin import command as queue_admin_command

    lookup_command.add_parser(sub)
    queue_admin_command.add_parser(sub)


def _run_queue_tool(args: argparse.Namespace) -> int | None:
    """Run `lookup` or `queue-admin`; None for any other command."""
    if args.command == "lookup":
        from tidings.lookup import command as lookup_command

        return lookup_command.run(args)
    if args.command == "queue-admin":
        from tidings.lookup.admin import command as queue_admin_command

        return queue_admin_command.run(args)
    return None


def build_parser(command: str = "") -> argparse.ArgumentParser:
    """The `tidings` parser; with `command` = "serve", only that subcommand's.

    `tidings serve` builds only its own parser: the other subcommands import a
    lot (the bench harness, aiohttp, ...), and with `--workers` this process
    stays alive as the supervisor, which should hold no more than it needs.
    """
    parser = argparse.ArgumentParser(prog="tidings", description="tidings real-time push server")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    if command == "serve":
        _serve_parser(sub)
        return parser
    from tidings.api import debug_command
    from tidings.bench import command as bench_command
    from tidings.queue import command as queue_command

    _queue_tool_parsers(sub)
    _serve_parser(sub)
    _token_parser(sub)
    bench_command.add_parser(sub)
    queue_command.add_parser(sub)
    debug_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser("serve" if argv[:1] == ["serve"] else "").parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if (status := _run_queue_tool(args)) is not None:
        return status
    if args.command == "token":
        return token(args)
    if args.command == "bench":
        from tidings.bench import command as bench_command

        return bench_command.run(args)
    if args.command == "queue":
        from tidings.queue import command as queue_command

        return queue_command.run(args)
    if args.command == "debug":
        from tidings.api import debug_command

        return debug_command.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
