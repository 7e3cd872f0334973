"""Topic and channel names: `^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1 to 64 characters."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 64
EPHEMERAL_SUFFIX = "#ephemeral"
_NAME = re.compile(r"[.a-zA-Z0-9_-]+(#ephemeral)?")


def is_valid_name(name: str) -> bool:
    """Whether `name` is a valid topic or channel name."""
    return 1 <= len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def is_ephemeral(name: str) -> bool:
    """Whether the topic or channel lives only in memory (`...#ephemeral`)."""
    return name.endswith(EPHEMERAL_SUFFIX)
