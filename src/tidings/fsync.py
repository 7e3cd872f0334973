"""The fsync policies of what is kept on disk: the queue's message logs, the SQLite history.

- `never`:  durable once written to the OS (survives kill -9, not a power cut);
- `always`: every write waits for its own fsync;
- `batch`:  writes that arrive while an fsync runs wait for the next one,
  which covers all of them (group commit).
"""

from __future__ import annotations

FSYNC_POLICIES = ("always", "batch", "never")


def check_fsync_policy(policy: str) -> str:
    """`policy` if it is one of FSYNC_POLICIES, else ValueError."""
    if policy not in FSYNC_POLICIES:
        raise ValueError(f"fsync policy must be one of {FSYNC_POLICIES}")
    return policy
