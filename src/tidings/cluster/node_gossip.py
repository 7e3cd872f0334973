"""A node's gossip membership: the `GossipMember` of `tidings serve`, kept joined.

What it adds to the runtime (`tidings.cluster.gossip`):

- settings in (`gossip_*`, `region`, `network`): keyring, label, Serf versions;
- joining the seeds, retried with backoff until one answers, and again whenever
  every other member has gone (isolation after a partition or a restart);
- this node's metadata (client and API URLs, region, network, connections,
  draining) republished when it changes: at once for anything but the
  connection count, which is republished at most every `CONNECTIONS_INTERVAL`;
- cluster events (member joined/updated/suspect/dead/left, Serf user events)
  into the node's event dispatcher, and counted for `info`;
- `drain()` (the node stops being offered by dispatchers) and `leave()`
  (draining first, then a graceful leave: Serf's leave intent, then memberlist's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from tidings.cluster.dispatcher import GatewayList, choose_gateways
from tidings.cluster.gossip import GossipError, GossipMember, advertise_host
from tidings.cluster.metadata import NodeMetadata
from tidings.cluster.settings import is_ip, parse_address, parse_key
from tidings.core.events import Event, EventDispatcher, EventType
from tidings.errors import ConfigError
from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind, MemberView
from tidings.protocol.memberlist.messages import SERF_VSN, NodeStateType
from tidings.protocol.serf.participant import SerfParticipant
from tidings.protocol.serf.tags import decode_tags
from tidings.settings import Settings
from tidings.upstream.user_events import UserEventSender

log = logging.getLogger(__name__)

#: Seconds between checks of the metadata (connection count, draining).
META_CHECK_INTERVAL = 1.0
#: A changed connection count is republished at most this often (seconds).
CONNECTIONS_INTERVAL = 5.0
#: Join retries: first delay, longest delay (seconds); and how often a joined
#: node checks that it still has company.
JOIN_BACKOFF_FIRST = 1.0
JOIN_BACKOFF_MAX = 30.0
ISOLATION_CHECK_INTERVAL = 5.0
LEAVE_TIMEOUT = 5.0

EVENT_TYPES: dict[MemberEventKind, EventType] = {
    MemberEventKind.JOIN: EventType.MEMBER_JOINED,
    MemberEventKind.UPDATE: EventType.MEMBER_UPDATED,
    MemberEventKind.SUSPECT: EventType.MEMBER_SUSPECT,
    MemberEventKind.DEAD: EventType.MEMBER_DEAD,
    MemberEventKind.LEAVE: EventType.MEMBER_LEFT,
}


def member_json(view: MemberView) -> dict[str, Any]:
    """A member as the `members` API method and `info` show it."""
    host, port = view.address
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "name": view.name,
        "address": address,
        "state": view.state.name.lower(),
        "incarnation": view.incarnation,
        "meta": meta_json(view.meta),
    }


def meta_json(meta: bytes) -> dict[str, str]:
    """Metadata as tags when it is Serf tags (tidings nodes, serf agents), else hex."""
    if not meta:
        return {}
    try:
        return decode_tags(meta)
    except DecodeError:
        return {"raw": meta.hex()}


def public_urls(
    settings: Settings,
    client_port: int,
    api_port: int,
    advertise: tuple[str, int] | None = None,
) -> tuple[tuple[str, ...], str]:
    """(client WebSocket URLs, API URL) other nodes and clients should use.

    The host is the first specific one of: the client port's address, the advertised
    gossip address, the gossip bind address; else the host name's address.
    """
    host = ""
    for candidate in (
        settings.address,
        advertise[0] if advertise else "",
        parse_address(settings.gossip_bind)[0] if settings.gossip_bind else "",
    ):
        if candidate not in ("", "0.0.0.0", "::"):
            host = candidate
            break
    host = host or advertise_host("")
    client_urls = tuple(settings.client_urls) or (
        f"ws://{_url_host(host)}:{client_port}/connection/websocket",
    )
    api_host = settings.api_address
    if api_host in ("", "0.0.0.0", "::"):
        api_host = host
    return client_urls, f"http://{_url_host(api_host)}:{api_port}/api"


def keyring_of(settings: Settings) -> Keyring | None:
    keys = [parse_key(k) for k in settings.gossip_secret_keys]
    return Keyring(keys) if keys else None


class NodeGossip:
    """Gossip membership of one node. `start()` after the node's ports are bound."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        events: EventDispatcher,
        connections: Callable[[], int],
        *,
        client_port: int,
        api_port: int,
        config: GossipConfig | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.events = events
        self.connections = connections
        self.bind = parse_address(settings.gossip_bind)
        self.advertise = (
            parse_address(settings.gossip_advertise) if settings.gossip_advertise else None
        )
        self.seeds = [parse_address(s) for s in settings.gossip_join]
        self.serf = SerfParticipant(name) if settings.gossip_serf else None
        self.draining = False
        #: Cluster events seen, by type (for `info`).
        self.counts: Counter[str] = Counter()
        self.joined = False
        self.client_urls, self.api_url = public_urls(
            settings, client_port, api_port, self.advertise
        )
        self._metadata = self._current_metadata()
        try:
            meta = self._metadata.to_meta()
        except ValueError as exc:  # over memberlist's 512 bytes: long URLs, names
            raise ConfigError("client_urls", str(exc)) from None
        self._published_at = 0.0
        config = config or GossipConfig()
        if settings.gossip_serf:
            config = dataclasses.replace(config, vsn=SERF_VSN)
        self.member = GossipMember(
            name,
            self.bind,
            advertise=self.advertise,
            meta=meta,
            config=config,
            keyring=keyring_of(settings),
            label=settings.gossip_label,
            on_event=self._on_member_event,
            on_user_message=self._on_user_message,
        )
        self._tasks: list[asyncio.Task[None]] = []
        #: POSTs cluster events to `cluster_events_url` (a webhook), if set.
        self.webhook: UserEventSender | None = None
        if settings.cluster_events_url:
            self.webhook = UserEventSender(
                events,
                settings.cluster_events_url,
                types=(*EVENT_TYPES.values(), EventType.CLUSTER_USER_EVENT),
            )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.member.start()
        except OSError as exc:
            host, port = self.bind
            raise OSError(exc.errno, f"gossip_bind {host}:{port}: {exc.strerror or exc}") from exc
        if self.webhook is not None:
            self.webhook.start()
        self._published_at = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._keep_joined(), name="gossip-join"),
            asyncio.create_task(self._keep_metadata(), name="gossip-meta"),
        ]
        log.info(
            "gossip: %s on %s:%d, seeds %s",
            self.name,
            self.bind[0],
            self.member.port,
            ", ".join(f"{h}:{p}" for h, p in self.seeds) or "none",
        )

    def drain(self, draining: bool = True) -> None:
        """Stop (or start again) being offered to clients by every dispatcher."""
        self.draining = draining
        self._publish_if_changed(force_connections=True)

    async def leave(self) -> None:
        """Drain, say goodbye to the cluster (bounded by `LEAVE_TIMEOUT`), close."""
        self.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if self._alone():
                pass  # nobody to tell (and nobody to carry our broadcasts: no wait)
            else:
                if self.serf is not None:
                    self.member.broadcast(self.serf.leave_intent())
                    await asyncio.sleep(self.member.config.gossip_interval * 3)
                async with asyncio.timeout(LEAVE_TIMEOUT):
                    await self.member.leave()
        except (TimeoutError, GossipError):
            log.warning("gossip: leave not confirmed within %.0f s", LEAVE_TIMEOUT)
        finally:
            await self.member.stop()
            await self._stop_webhook()
        log.info("gossip: left the cluster")

    async def stop(self) -> None:
        """Close at once, without a leave (others will find this node dead)."""
        for task in self._tasks:
            task.cancel()
        await self.member.stop()
        await self._stop_webhook()

    async def _stop_webhook(self) -> None:
        if self.webhook is not None:
            await asyncio.sleep(0.1)  # the last events' POST (e.g. our own leave)
            await self.webhook.stop()

    # -- views ---------------------------------------------------------------------

    def members(self, *, include_dead: bool = True) -> list[MemberView]:
        return self.member.members(include_dead=include_dead)

    def members_json(self) -> list[dict[str, Any]]:
        return [member_json(view) for view in self.members()]

    def gateways(self, network: str, region: str) -> GatewayList:
        return choose_gateways(self.members(include_dead=False), network=network, region=region)

    def summary(self) -> dict[str, float]:
        """Numbers for `info`: members by state, events by type, refused packets."""
        items: dict[str, float] = {}
        states = Counter(view.state.name.lower() for view in self.members())
        for state in NodeStateType:
            items[f"gossip.members.{state.name.lower()}"] = states.get(state.name.lower(), 0)
        items.update({f"gossip.events.{k}": v for k, v in self.counts.items()})
        items["gossip.refused_packets"] = self.member.refused_packets
        items["gossip.draining"] = int(self.draining)
        if self.webhook is not None:
            items["gossip.webhook.sent"] = self.webhook.sent
            items["gossip.webhook.failures"] = self.webhook.failures
        return items

    # -- background ----------------------------------------------------------------

    def _alone(self) -> bool:
        return not any(
            v.name != self.name and v.state is NodeStateType.ALIVE for v in self.member.members()
        )

    async def _keep_joined(self) -> None:
        if not self.seeds:
            return
        delay = JOIN_BACKOFF_FIRST
        while True:
            if not self._alone():
                delay = JOIN_BACKOFF_FIRST
                await asyncio.sleep(ISOLATION_CHECK_INTERVAL)
                continue
            try:
                answered = await self.member.join(self.seeds)
            except GossipError as exc:
                log.warning("gossip: join failed (%s); retrying in %.0f s", exc, delay)
            except Exception:
                log.exception("gossip: join failed; retrying in %.0f s", delay)
            else:
                if not self.joined:
                    log.info("gossip: joined through %d of %d seeds", answered, len(self.seeds))
                self.joined = True
                if self.serf is not None:
                    self.member.broadcast(self.serf.join_intent())
                delay = JOIN_BACKOFF_FIRST
                await asyncio.sleep(ISOLATION_CHECK_INTERVAL)
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, JOIN_BACKOFF_MAX)

    async def _keep_metadata(self) -> None:
        while True:
            await asyncio.sleep(META_CHECK_INTERVAL)
            try:
                self._publish_if_changed()
            except Exception:
                log.exception("gossip: publishing metadata failed")

    def _current_metadata(self) -> NodeMetadata:
        return NodeMetadata(
            client_urls=self.client_urls,
            api_url=self.api_url,
            region=self.settings.region,
            network=self.settings.network,
            connections=self.connections(),
            draining=self.draining,
        )

    def _publish_if_changed(self, *, force_connections: bool = False) -> None:
        """Republish (alive, new incarnation) when the metadata changed meaningfully."""
        now = time.monotonic()
        current = self._current_metadata()
        if current == self._metadata:
            return
        only_connections = (
            current.connections != self._metadata.connections
            and current == _with_connections(self._metadata, current.connections)
        )
        recently = now - self._published_at < CONNECTIONS_INTERVAL
        if only_connections and not force_connections and recently:
            return
        self._metadata = current
        self._published_at = now
        self.member.update_meta(current.to_meta())

    # -- callbacks from the runtime ------------------------------------------------

    def _on_member_event(self, event: MemberEvent) -> None:
        event_type = EVENT_TYPES[event.kind]
        self.counts[event_type.value] += 1
        view = event.member
        if view.name != self.name and event.kind is not MemberEventKind.UPDATE:
            log.info(
                "gossip: member %s %s (%s)",
                view.name,
                event.kind.value,
                member_json(view)["address"],
            )
        if self.events.wants(event_type):
            self.events.emit(Event(event_type, time=time.time(), detail=member_json(view)))

    def _on_user_message(self, payload: bytes) -> None:
        if self.serf is None:
            self.counts["user_message"] += 1
            return
        user_event = self.serf.receive(payload)
        if user_event is None:
            return
        event_type = EventType.CLUSTER_USER_EVENT
        self.counts[event_type.value] += 1
        log.info("gossip: serf user event %r (%d bytes)", user_event.name, len(user_event.payload))
        if self.events.wants(event_type):
            detail = {
                "name": user_event.name,
                "payload": user_event.payload.decode("utf-8", "replace"),
                "ltime": user_event.ltime,
            }
            self.events.emit(Event(event_type, time=time.time(), detail=detail))


def _with_connections(meta: NodeMetadata, connections: int) -> NodeMetadata:
    return NodeMetadata(
        meta.client_urls, meta.api_url, meta.region, meta.network, connections, meta.draining
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and is_ip(host) else host
