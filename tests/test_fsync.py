"""The fsync policies shared by the queue's logs and the SQLite history store."""

from __future__ import annotations

import pytest

from tidings.fsync import FSYNC_POLICIES, check_fsync_policy


@pytest.mark.parametrize("policy", FSYNC_POLICIES)
def test_a_known_policy_is_accepted(policy: str) -> None:
    assert check_fsync_policy(policy) == policy


@pytest.mark.parametrize("policy", ["", "sometimes", "ALWAYS", "always "])
def test_anything_else_is_refused_naming_the_policies(policy: str) -> None:
    with pytest.raises(ValueError, match="fsync policy must be one of"):
        check_fsync_policy(policy)


def test_the_policies_are_those_the_settings_and_the_queue_offer() -> None:
    assert FSYNC_POLICIES == ("always", "batch", "never")
