"""The cluster-wide `channels` answer: counts added up, silence and truncation are errors."""

from __future__ import annotations

import asyncio

import pytest

from tidings.core import channel_survey
from tidings.core.channel_survey import ChannelSurvey
from tidings.core.control import ChannelsAnswer, ChannelsQuery, decode_command
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode


class Bus:
    """Control messages between surveys, as the broker would carry them (not to the sender)."""

    def __init__(self) -> None:
        self.surveys: dict[str, ChannelSurvey] = {}
        self.mute: set[str] = set()

    def join(self, uid: str, counts: dict[str, int], timeout: float = 1.0) -> ChannelSurvey:
        def local(pattern: str) -> dict[str, int]:
            return {k: v for k, v in counts.items() if not pattern or k.startswith(pattern[:-1])}

        async def send(data: bytes, target: str) -> None:
            await asyncio.sleep(0)
            command = decode_command(data)
            for other_uid, other in self.surveys.items():
                if other_uid == uid or other_uid in self.mute or target not in ("", other_uid):
                    continue
                if isinstance(command, ChannelsQuery):
                    asyncio.get_running_loop().create_task(other.answer(command))
                elif isinstance(command, ChannelsAnswer):
                    other.received(command)

        survey = self.surveys[uid] = ChannelSurvey(uid, send, local, timeout)
        return survey


async def test_counts_of_every_node_are_added_up() -> None:
    bus = Bus()
    a = bus.join("a", {"news": 2, "chat": 1})
    bus.join("b", {"news": 3, "sport": 4})
    bus.join("c", {"chat": 5})
    assert await a.channels("", ["a", "b", "c"]) == {"news": 5, "chat": 6, "sport": 4}
    assert await a.channels("n*", ["b", "c"]) == {"news": 5}


async def test_alone_it_answers_from_this_node_without_asking() -> None:
    sent: list[bytes] = []

    async def send(data: bytes, target: str) -> None:
        sent.append(data)

    survey = ChannelSurvey("a", send, lambda pattern: {"x": 1}, 1.0)
    assert await survey.channels("", ["a"]) == {"x": 1}
    assert sent == []


async def test_a_silent_node_is_an_error_naming_it() -> None:
    bus = Bus()
    a = bus.join("a", {"news": 1}, timeout=0.2)
    bus.join("b", {"news": 1})
    bus.join("c", {"news": 1})
    bus.mute.add("c")
    with pytest.raises(ReplyError) as caught:
        await a.channels("", ["b", "c"])
    assert caught.value.code == ErrorCode.INTERNAL
    assert "node(s) c did not answer" in caught.value.info.message
    assert not a._surveys  # nothing left waiting


async def test_too_many_channels_on_a_node_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_survey, "MAX_ANSWER", 2)
    bus = Bus()
    a = bus.join("a", {})
    bus.join("b", {"x": 1, "y": 1, "z": 1})
    with pytest.raises(ReplyError, match="narrower pattern"):
        await a.channels("", ["b"])


async def test_answers_nobody_asked_for_are_ignored() -> None:
    bus = Bus()
    a = bus.join("a", {"news": 1})
    bus.join("b", {"news": 1})
    a.received(ChannelsAnswer(request="unknown", node="b", channels={"evil": 1000}))
    task = asyncio.ensure_future(a.channels("", ["b"]))
    await asyncio.sleep(0)
    (request,) = a._surveys
    # an answer from a node that was not asked, and a second answer from b, count nothing
    a.received(ChannelsAnswer(request=request, node="z", channels={"evil": 1000}))
    assert await task == {"news": 2}
    a.received(ChannelsAnswer(request=request, node="b", channels={"evil": 1000}))
