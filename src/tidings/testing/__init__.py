"""A testing kit shipped with tidings: fakes and conformance suites.

- `FakeClock`: a clock that only moves when told to, for stores that take one.
- `MemoryTransport`: an in-memory `Transport` that records frames and closes.
- `GossipSimulation`: N memberlist members on a fake network (loss, delay,
  partitions) driven by simulated time.
- `check_history_store` / `check_presence_store` / `check_register` /
  `check_broker`: the checks every `HistoryStore` / `PresenceStore` /
  `UserRegister` / `Broker` implementation must pass (`check_presence_expiry`,
  `check_register_expiry`, `check_presence_node_gone`, `check_register_node_gone`
  for those shared by several nodes);
  `check_durable_store`: what durable history stores keep across a reopen;
  `check_keyed_state_store`: the keyed state (map channel) store contract.

Nothing here is used by a running server; it exists so that tests (ours and
those of third-party backends) exercise the real code without sockets.
"""

from tidings.testing.broker import BROKER_CHECKS, check_broker
from tidings.testing.clock import FakeClock
from tidings.testing.gossip import GossipSimulation
from tidings.testing.keyed import KEYED_STATE_STORE_CHECKS, check_keyed_state_store
from tidings.testing.presence import (
    PRESENCE_STORE_CHECKS,
    check_presence_expiry,
    check_presence_node_gone,
    check_presence_store,
)
from tidings.testing.register import (
    REGISTER_CHECKS,
    check_register,
    check_register_expiry,
    check_register_node_gone,
)
from tidings.testing.store import (
    DURABLE_STORE_CHECKS,
    HISTORY_STORE_CHECKS,
    check_durable_store,
    check_history_store,
)
from tidings.testing.transport import MemoryTransport

__all__ = [
    "BROKER_CHECKS",
    "DURABLE_STORE_CHECKS",
    "HISTORY_STORE_CHECKS",
    "KEYED_STATE_STORE_CHECKS",
    "PRESENCE_STORE_CHECKS",
    "REGISTER_CHECKS",
    "FakeClock",
    "GossipSimulation",
    "MemoryTransport",
    "check_broker",
    "check_durable_store",
    "check_history_store",
    "check_keyed_state_store",
    "check_presence_expiry",
    "check_presence_node_gone",
    "check_presence_store",
    "check_register",
    "check_register_expiry",
    "check_register_node_gone",
]
