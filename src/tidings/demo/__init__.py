"""The chat room demo (`tidings serve --demo`): a browser page on the client port.

The page, its script and style live in `static/`; the official `centrifuge`
browser SDK is copied into `static/vendor/` by `scripts/vendor-sdk.sh` (npm,
at set-up time, never at run time). In demo mode the node also gets a `chat`
namespace that lets signed-in users talk, unless the settings define one.
"""

from __future__ import annotations

from tidings.channel_options import ChannelOptions
from tidings.settings import Settings

#: Namespace of the chat rooms; the page uses the channel `chat:<room>`.
CHAT_NAMESPACE = "chat"


def chat_options() -> ChannelOptions:
    """What a chat room needs: who is here, the last 50 messages, and recovery."""
    return ChannelOptions(
        presence=True,
        join_leave=True,
        history_size=50,
        history_ttl=86400.0,
        force_recovery=True,
        allow_subscribe_for_client=True,
        allow_publish_for_subscriber=True,
        allow_presence_for_subscriber=True,
        allow_history_for_subscriber=True,
    )


def configure(settings: Settings) -> None:
    """In demo mode, add the `chat` namespace if the settings have none (before the node starts)."""
    if settings.demo and CHAT_NAMESPACE not in settings.namespaces:
        settings.namespaces[CHAT_NAMESPACE] = chat_options()
