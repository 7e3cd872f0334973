"""The client state table: init -> subscribed -> closing, as data.

`RULES[state][verb]` says what a command does in a state: `ALLOW` it,
`IGNORE` it silently (RDY after CLS, as nsqd does), or `REJECT` it with the
fatal `E_INVALID cannot VERB in current state`. `TRANSITIONS` lists the
commands that move the client to another state once they succeed.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class ClientState(IntEnum):
    """States of one V2 connection (values as in nsqd's stats)."""

    INIT = 0
    SUBSCRIBED = 3
    CLOSING = 4


class Rule(Enum):
    ALLOW = "allow"
    IGNORE = "ignore"
    REJECT = "reject"


VERBS = (
    "IDENTIFY",
    "AUTH",
    "SUB",
    "PUB",
    "MPUB",
    "DPUB",
    "RDY",
    "FIN",
    "REQ",
    "TOUCH",
    "NOP",
    "CLS",
)

_A, _I, _R = Rule.ALLOW, Rule.IGNORE, Rule.REJECT

#               IDENTIFY AUTH SUB PUB MPUB DPUB RDY FIN REQ TOUCH NOP CLS
_TABLE = {
    ClientState.INIT: (_A, _A, _A, _A, _A, _A, _R, _R, _R, _R, _A, _R),
    ClientState.SUBSCRIBED: (_R, _R, _R, _A, _A, _A, _A, _A, _A, _A, _A, _A),
    ClientState.CLOSING: (_R, _R, _R, _A, _A, _A, _I, _A, _A, _A, _A, _R),
}

RULES: dict[ClientState, dict[str, Rule]] = {
    state: dict(zip(VERBS, row, strict=True)) for state, row in _TABLE.items()
}

TRANSITIONS: dict[tuple[ClientState, str], ClientState] = {
    (ClientState.INIT, "SUB"): ClientState.SUBSCRIBED,
    (ClientState.SUBSCRIBED, "CLS"): ClientState.CLOSING,
}


def rule(state: ClientState, verb: str) -> Rule:
    """What `verb` does in `state`."""
    return RULES[state][verb]


def next_state(state: ClientState, verb: str) -> ClientState:
    """The state after `verb` succeeded in `state`."""
    return TRANSITIONS.get((state, verb), state)
