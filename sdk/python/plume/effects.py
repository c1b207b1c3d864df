"""Effects on the channel and the app's topics (the ``channel`` import)."""

from typing import Any

from componentize_py_types import Err
from wit_world.imports import channel as wit

from .payload import Value, to_wit


class HostError(Exception):
    """The host refused an effect. ``kind`` is the WIT error case
    (``not-granted``, ``limit``, ``quota``, ...), ``detail`` its text."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def host_error(err: Err) -> HostError:
    """A :class:`HostError` from a WIT error variant (``ChannelError_Limit("...")``)."""
    case = err.value
    name = type(case).__name__.split("_", 1)[-1]
    kind = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(case, "value", "")
    return HostError(kind, detail if isinstance(detail, str) else str(detail))


def call(function, *args: Any) -> Any:
    """Call a host import, raising :class:`HostError` for its error."""
    try:
        return function(*args)
    except Err as err:
        raise host_error(err) from None


def push(event: str, value: Value) -> None:
    """Push ``event`` to this channel's client only."""
    call(wit.push, event, to_wit(value))


def broadcast(event: str, value: Value) -> None:
    """Broadcast on this channel's topic, to every subscriber (this one too)."""
    call(wit.broadcast, event, to_wit(value))


def broadcast_from(event: str, value: Value) -> None:
    """Broadcast on this channel's topic to every subscriber but this channel."""
    call(wit.broadcast_from, event, to_wit(value))


def broadcast_to(topic: str, event: str, value: Value) -> None:
    """Broadcast on any topic of the app (needs the ``broadcast_to`` grant)."""
    call(wit.broadcast_to, topic, event, to_wit(value))


def subscribe(topic: str) -> None:
    """Receive ``topic``'s broadcasts in ``handle_info``."""
    call(wit.subscribe, topic)


def unsubscribe(topic: str) -> None:
    call(wit.unsubscribe, topic)
