"""Channel names, namespaces, and the permission checks of client commands."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.conftest import make_settings
from tidings.core.channels import Channel, ChannelRules
from tidings.errors import ReplyError


def rules(channel: dict[str, Any] | None = None, **namespaces: dict[str, Any]) -> ChannelRules:
    return ChannelRules(
        make_settings(channel=channel or {}, namespaces=namespaces, channel_max_length=20)
    )


def error_code(call: Any, *args: Any) -> int:
    with pytest.raises(ReplyError) as info:
        call(*args)
    return info.value.code


# --- names -------------------------------------------------------------------------


def test_plain_channel_uses_default_options() -> None:
    r = rules({"presence": True}, chat={"history_size": 5, "history_ttl": 60})
    ch = r.resolve("news")
    assert (ch.name, ch.namespace, ch.private, ch.allowed_users) == ("news", "", False, None)
    assert ch.options.presence is True
    assert ch.options.history_size == 0
    assert not ch.user_limited


def test_namespace_selects_its_options() -> None:
    r = rules({"presence": True}, chat={"history_size": 5, "history_ttl": 60})
    ch = r.resolve("chat:room1")
    assert ch.namespace == "chat"
    assert ch.options.history_size == 5
    assert ch.options.presence is False, "namespace options do not inherit [channel]"


def test_unknown_namespace_is_102() -> None:
    assert error_code(rules().resolve, "nope:room") == 102


@pytest.mark.parametrize(
    "name", ["", "a" * 21, "has space", "tab\there", "new\nline", "nul\x00", "é" * 11]
)
def test_bad_names_are_107(name: str) -> None:
    assert error_code(rules().resolve, name) == 107


def test_name_length_is_counted_in_bytes() -> None:
    r = rules()
    assert r.resolve("é" * 10).name == "é" * 10  # 20 bytes: at the limit


def test_private_channel() -> None:
    r = rules(chat={})
    ch = r.resolve("$secret")
    assert ch.private and ch.namespace == ""
    ch = r.resolve("$chat:secret")
    assert ch.private and ch.namespace == "chat"


def test_user_limited_channels() -> None:
    r = rules(dialog={})
    ch = r.resolve("dialog:#42,43")
    assert ch.namespace == "dialog"
    assert ch.allowed_users == frozenset({"42", "43"})
    assert ch.user_limited
    assert r.resolve("#42").allowed_users == frozenset({"42"})
    assert r.resolve("talk#1,,2,").allowed_users == frozenset({"1", "2"})


def test_boundary_in_what_looks_like_a_namespace_is_not_a_namespace() -> None:
    ch = rules().resolve("a#b:c")
    assert ch.namespace == ""
    assert ch.allowed_users == frozenset({"b:c"})


def test_resolve_is_cached() -> None:
    r = rules()
    assert r.resolve("news") is r.resolve("news")


def test_channel_is_frozen() -> None:
    ch = rules().resolve("news")
    assert isinstance(ch, Channel)
    with pytest.raises(AttributeError):
        ch.name = "x"  # type: ignore[misc]


# --- permissions -----------------------------------------------------------------


def test_subscribe_permissions() -> None:
    check = ChannelRules.check_subscribe
    closed = rules().resolve("news")
    assert error_code(check, closed, "u1", False) == 103
    check(closed, "u1", True)  # a token is permission

    open_ = rules({"allow_subscribe_for_client": True}).resolve("news")
    check(open_, "u1", False)
    assert error_code(check, open_, "", False) == 103, "anonymous needs its own option"

    anon = rules(
        {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}
    ).resolve("news")
    check(anon, "", False)


def test_private_channel_needs_a_token_whatever_the_options() -> None:
    ch = rules({"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}).resolve(
        "$news"
    )
    assert error_code(ChannelRules.check_subscribe, ch, "u1", False) == 103
    ChannelRules.check_subscribe(ch, "u1", True)


def test_user_limited_subscribe() -> None:
    check = ChannelRules.check_subscribe
    off = rules({"allow_subscribe_for_client": True}).resolve("dialog#1,2")
    assert error_code(check, off, "1", False) == 103, "needs allow_user_limited_channels"
    on = rules({"allow_user_limited_channels": True}).resolve("dialog#1,2")
    check(on, "1", False)
    check(on, "2", False)
    assert error_code(check, on, "3", False) == 103
    assert error_code(check, on, "", False) == 103


def test_publish_permissions() -> None:
    check = ChannelRules.check_publish
    closed = rules().resolve("news")
    assert error_code(check, closed, "u1", True) == 103
    by_client = rules({"allow_publish_for_client": True}).resolve("news")
    check(by_client, "u1", False)
    assert error_code(check, by_client, "", False) == 103
    by_sub = rules({"allow_publish_for_subscriber": True}).resolve("news")
    check(by_sub, "u1", True)
    assert error_code(check, by_sub, "u1", False) == 103
    anon = rules({"allow_publish_for_client": True, "allow_publish_for_anonymous": True})
    check(anon.resolve("news"), "", False)


def test_presence_permissions() -> None:
    check = ChannelRules.check_presence
    assert error_code(check, rules({"allow_presence_for_client": True}).resolve("n"), True) == 108
    on = rules({"presence": True}).resolve("n")
    assert error_code(check, on, True) == 103
    by_sub = rules({"presence": True, "allow_presence_for_subscriber": True}).resolve("n")
    check(by_sub, True)
    assert error_code(check, by_sub, False) == 103
    check(rules({"presence": True, "allow_presence_for_client": True}).resolve("n"), False)


def test_history_permissions() -> None:
    check = ChannelRules.check_history
    no_history = rules({"allow_history_for_client": True}).resolve("n")
    assert error_code(check, no_history, True) == 108
    size_only = rules({"history_size": 5, "allow_history_for_client": True}).resolve("n")
    assert error_code(check, size_only, True) == 108, "history needs a size and a ttl"
    kept = {"history_size": 5, "history_ttl": "1m"}
    assert error_code(check, rules(kept).resolve("n"), True) == 103
    by_sub = rules({**kept, "allow_history_for_subscriber": True}).resolve("n")
    check(by_sub, True)
    assert error_code(check, by_sub, False) == 103
    check(rules({**kept, "allow_history_for_client": True}).resolve("n"), False)
