"""Adversarial input for the state machine: any sequence of well-formed messages with
arbitrary names, incarnations and sequence numbers, from anywhere, at any time, must
neither raise nor break the member's own invariants."""

from __future__ import annotations

import contextlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.protocol.memberlist.membership import Membership
from tidings.protocol.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    NodeStateType,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
)
from tidings.protocol.memberlist.versions import IncompatibleVersions

names = st.sampled_from(["self", "b", "c", "d", ""]) | st.text(max_size=8)
incarnations = st.integers(0, 2**32 - 1)
seqs = st.integers(0, 2**32 - 1)
addrs = st.sampled_from([bytes((10, 0, 0, 2)), bytes((10, 0, 0, 3)), b"", bytes(16)])
ports = st.integers(0, 65535)
vsns = st.sampled_from([bytes((1, 5, 2, 0, 0, 0)), bytes(6), b"", bytes((5, 1, 2, 0, 0, 0))])

messages = st.one_of(
    st.builds(Ping, seqs, names, addrs, ports, names),
    st.builds(IndirectPing, seqs, addrs, ports, names, st.booleans(), addrs, ports, names),
    st.builds(Ack, seqs, st.binary(max_size=8)),
    st.builds(Nack, seqs),
    st.builds(Suspect, incarnations, names, names),
    st.builds(Dead, incarnations, names, names),
    st.builds(Alive, incarnations, names, addrs, ports, st.binary(max_size=8), vsns),
    st.builds(User, st.binary(max_size=8)),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("packet"), st.lists(messages, min_size=1, max_size=4)),
        st.tuples(st.just("tick"), st.floats(0, 5)),
        st.tuples(
            st.just("push-pull"),
            st.lists(
                st.builds(
                    PushNodeState,
                    names,
                    addrs,
                    ports,
                    st.binary(max_size=4),
                    incarnations,
                    st.integers(-1, 5),
                    vsns,
                ),
                max_size=4,
            ),
        ),
        st.tuples(st.just("leave"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, seed=st.integers(0, 2**16))
def test_state_machine_survives_any_message_sequence(
    steps: list[tuple[str, object]], seed: int
) -> None:
    member = Membership("self", ("10.0.0.1", 7946), now=0.0, rng=random.Random(seed))
    now = 0.0
    last_incarnation = member.incarnation
    for kind, value in steps:
        if kind == "packet":
            member.receive(tuple(value), ("10.0.0.9", 7946), now)  # type: ignore[arg-type]
        elif kind == "tick":
            now += value  # type: ignore[operator]
            member.tick(now)
        elif kind == "push-pull":
            with contextlib.suppress(IncompatibleVersions):  # refused as a whole, as Go does
                member.merge_remote_state(PushPull(False, tuple(value)), now)  # type: ignore[arg-type]
        else:
            member.leave(now)
        member.take_outgoing()
        member.take_events()
        # Until we leave, nobody else's word makes us suspect or dead (we refute);
        # once we left, we no longer defend ourselves (as memberlist). Our incarnation
        # never goes down.
        if not member.left:
            assert member.state_of("self") is NodeStateType.ALIVE
        assert member.incarnation >= last_incarnation
        last_incarnation = member.incarnation
