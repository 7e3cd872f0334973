"""memberlist's version check before merging a push-pull (`verifyProtocol`).

Every member states [ProtocolMin, ProtocolMax, ProtocolCur, DelegateMin,
DelegateMax, DelegateCur]. The cluster may only contain members whose current
versions lie in the intersection of the alive members' ranges; a push-pull that
would break this is refused as a whole (plain memberlist peers speak delegate
version 0, Serf agents 2..5: they cannot share a cluster).
"""

from __future__ import annotations

from collections.abc import Iterable

from tidings.protocol.memberlist.errors import MemberlistError
from tidings.protocol.memberlist.member import Member
from tidings.protocol.memberlist.messages import NodeStateType, PushNodeState


class IncompatibleVersions(MemberlistError):
    """A push-pull would bring members whose protocol versions cannot work together."""


def check_versions(remote: Iterable[PushNodeState], local: Iterable[Member]) -> None:
    remote = list(remote)
    local = list(local)
    max_pmin = max_dmin = 0
    min_pmax = min_dmax = 255
    alive_ranges = [r.vsn for r in remote if r.state == NodeStateType.ALIVE and len(r.vsn) >= 5]
    alive_ranges += [m.vsn for m in local if m.state == NodeStateType.ALIVE and len(m.vsn) >= 6]
    for vsn in alive_ranges:
        max_pmin, min_pmax = max(max_pmin, vsn[0]), min(min_pmax, vsn[1])
        max_dmin, min_dmax = max(max_dmin, vsn[3]), min(min_dmax, vsn[4])
    speakers = [(r.name, r.vsn) for r in remote] + [(m.name, m.vsn) for m in local]
    for name, vsn in speakers:
        pcur, dcur = (vsn[2], vsn[5]) if len(vsn) >= 6 else (0, 0)
        if not max_pmin <= pcur <= min_pmax:
            raise IncompatibleVersions(
                f"member {name!r} protocol version {pcur} is outside [{max_pmin}, {min_pmax}]"
            )
        if not max_dmin <= dcur <= min_dmax:
            raise IncompatibleVersions(
                f"member {name!r} delegate protocol version {dcur} is outside "
                f"[{max_dmin}, {min_dmax}]"
            )
