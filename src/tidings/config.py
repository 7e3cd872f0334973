"""Settings: embedded defaults, then a TOML file, then `TIDINGS_*` variables, then flags.

Every setting has one name used in all three places: `api_port` in the file,
`TIDINGS_API_PORT` in the environment, `--api-port` on the command line.
Namespace and default channel options are tables (`[namespaces.chat]`,
`[channel]`); in the environment they are JSON objects (`TIDINGS_NAMESPACES`,
`TIDINGS_CHANNEL`) and on the command line `--namespace chat.history_size=10`
and `--channel presence=true`. A bad value stops start-up with one
`ConfigError` that names the key.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from tidings.channel_options import ChannelOptions
from tidings.errors import ConfigError
from tidings.settings import Settings
from tidings.settings_rules import check

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_KEYS = frozenset(
    {
        "history_ttl",
        "map_key_ttl",
        "map_stream_ttl",
        "shared_poll_refresh_interval",
        "shared_poll_channel_shutdown_delay",
        "shared_poll_timeout",
        "shared_poll_track_expired_extra_delay",
        "client_ping_interval",
        "client_pong_timeout",
        "client_stale_close_delay",
        "shutdown_timeout",
        "user_events_grace",
        "personal_channel_history_ttl",
        "durable_batch_window",
        "redis_connect_timeout",
        "redis_command_timeout",
        "node_heartbeat_interval",
        "node_heartbeat_timeout",
        "api_body_timeout",
        "client_head_timeout",
        "client_message_timeout",
        "client_close_timeout",
        "timeout",
        "refresh_retry",
        "admin_token_ttl",
    }
)
#: Settings that are tables (or lists of them): JSON in the environment, no plain `--flag`.
TABLE_KEYS = frozenset(
    {
        "channel",
        "namespaces",
        "proxy",
        "proxies",
        "rpc_namespaces",
        "queue_consume",
        "queue_rpc_topics",
    }
)


_DEFAULTS = Settings()


def parse_duration(value: str) -> float:
    """Seconds in a duration like `30`, `1.5s`, `500ms`, `5m`, `1h`, `7d`."""
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit or "s"]


def parse_scalar(text: str) -> Any:
    """A value given as text (env or flag): a TOML scalar if it is one, else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def text_value(field: str, text: str) -> Any:
    """A setting given as text (env or flag), read by the setting's type.

    Strings are taken as they are; lists as a TOML array (`["a", "b"]`) or
    comma-separated (`a,b`); anything else as a TOML scalar.
    """
    default = getattr(_DEFAULTS, field, None)
    if isinstance(default, str):
        return text
    if isinstance(default, list):
        if text.lstrip().startswith("["):
            return parse_scalar(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return parse_scalar(text)


def load_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: invalid TOML: {exc}") from None


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as `TIDINGS_<NAME>` variables."""
    out: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        raw = environ.get(f"TIDINGS_{field.upper()}")
        if raw is None:
            continue
        if field in TABLE_KEYS:
            try:
                out[field] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(field, f"TIDINGS_{field.upper()} is not JSON: {exc}") from None
        else:
            out[field] = text_value(field, raw)
    return out


def table_assignments(pairs: list[str], *, with_namespace: bool) -> dict[str, Any]:
    """`['chat.presence=true']` (or `['presence=true']`) as nested tables."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(key or pair, f"expected KEY=VALUE, got {pair!r}")
        if with_namespace:
            ns, dot, option = key.partition(".")
            if not dot or not ns or not option:
                raise ConfigError(key, f"expected NAMESPACE.OPTION=VALUE, got {pair!r}")
            out.setdefault(ns, {})[option] = parse_scalar(text)
        else:
            out[key] = parse_scalar(text)
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; tables are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def _normalise_durations(raw: Any, path: str) -> Any:
    if isinstance(raw, Mapping):
        return {
            k: _normalise_durations(v, f"{path}.{k}" if path else str(k)) for k, v in raw.items()
        }
    key = path.rsplit(".", 1)[-1]
    if key in _DURATION_KEYS and isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
    return raw


def _key_of(message: str) -> tuple[str, str]:
    """Split msgspec's `... - at `$.a.b`` into (`a.b`, the message without the path)."""
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        return "", message
    key = where.rstrip("`").lstrip(".").replace("[", ".").replace("]", "").replace("'", "")
    key = key.replace('"', "")
    unknown = re.search(r"unknown field `([^`]+)`", text)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        text = "unknown setting"
    return key, text


def build(raw: Mapping[str, Any]) -> Settings:
    """Validated settings from merged raw layers."""
    normalised = _normalise_durations(raw, "")
    for key in ("redis_address", "redis_cluster_address"):
        if isinstance(normalised.get(key), str):  # one URL given as a string
            normalised[key] = [normalised[key]]
    # msgspec names a dict value `[...]`: check each namespace alone to name it in the error.
    namespaces = normalised.get("namespaces")
    for ns, opts in namespaces.items() if isinstance(namespaces, Mapping) else ():
        try:
            msgspec.convert(opts, ChannelOptions, strict=False)
        except msgspec.ValidationError as exc:
            key, text = _key_of(str(exc))
            unknown = re.search(r"unknown field `([^`]+)`", text)
            if unknown:
                key, text = unknown.group(1), "unknown setting"
            where = ".".join(p for p in ("namespaces", str(ns), key) if p)
            raise ConfigError(where, text) from None
    try:
        settings = msgspec.convert(normalised, Settings, strict=False)
    except msgspec.ValidationError as exc:
        key, text = _key_of(str(exc))
        if not key:
            unknown = re.search(r"unknown field `([^`]+)`", text)
            if unknown:
                key, text = unknown.group(1), "unknown setting"
        raise ConfigError(key, text) from None
    check(settings)
    return settings


def load(
    config_file: Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> Settings:
    """Settings from defaults < file < environment < flags."""
    file_layer = load_file(config_file) if config_file is not None else {}
    return build(merge(file_layer, from_environment(environ), flags))
