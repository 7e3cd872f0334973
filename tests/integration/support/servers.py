"""Servers with settings that conftest's TOML writer cannot express."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess, free_port, server_config, write_toml


def start_with_lists(
    server_factory: Callable[..., ServerProcess],
    tmp_path: Path,
    lists: dict[str, list[str]],
    settings: dict[str, Any] | None = None,
) -> ServerProcess:
    """A server whose TOML file also has list settings (`client_ip_allow`, ...).

    conftest's TOML writer quotes lists, and list settings cannot be flags, so
    this writes a complete config file of its own and passes it as the last
    `--config` (the last one wins).
    """
    port, api_port = free_port(), free_port()
    path = tmp_path / f"lists-{port}.toml"
    write_toml(path, server_config(tmp_path, port, api_port, settings))
    top = "".join(f"{key} = {json.dumps(value)}\n" for key, value in lists.items())
    path.write_text(top + path.read_text())
    server = server_factory({"port": port, "api_port": api_port}, args=["--config", str(path)])
    server.port, server.api_port = port, api_port
    return server
