"""Options of a namespace's channels (`tidings.channel_options`)."""

from __future__ import annotations

from tidings.channel_options import ChannelOptions


def test_history_enabled_needs_size_and_ttl() -> None:
    assert not ChannelOptions(history_size=5).history_enabled
    assert not ChannelOptions(history_ttl=5).history_enabled
    assert ChannelOptions(history_size=5, history_ttl=5).history_enabled
