"""What a callback decided: replies, stops, joins, with new assigns.

``assigns`` is always optional: ``None`` keeps the channel's assigns, a
dict replaces them.
"""

from dataclasses import dataclass
from typing import Any, Optional

from wit_world.imports import types
from wit_world.exports import channel_handler as ch

from .payload import Value, dumps, to_wit


@dataclass(frozen=True)
class Outcome:
    """The result of ``handle_in`` (and, for ``noreply``/``stop``, of
    ``handle_info``)."""

    action: Any
    assigns: Optional[dict] = None


@dataclass(frozen=True)
class Join:
    """The result of ``join``: joined with a reply, or refused."""

    accepted: bool
    payload: Any
    assigns: Optional[dict] = None


def _reply(status: types.ReplyStatus, value: Value) -> types.Reply:
    return types.Reply(status, to_wit(value))


def ok(value: Value = None, *, assigns: Optional[dict] = None) -> Outcome:
    """Reply ``{"status": "ok", "response": value}`` (``{}`` by default)."""
    return Outcome(ch.Action_Reply(_reply(types.ReplyStatus.OK, {} if value is None else value)), assigns)


def error(value: Value = None, *, assigns: Optional[dict] = None) -> Outcome:
    """Reply ``{"status": "error", "response": value}`` (``{}`` by default)."""
    return Outcome(ch.Action_Reply(_reply(types.ReplyStatus.ERROR, {} if value is None else value)), assigns)


def noreply(*, assigns: Optional[dict] = None) -> Outcome:
    """No reply (or a later one, with the push's socket ref)."""
    return Outcome(ch.Action_Noreply(), assigns)


def stop(reason: str = "normal", *, reply: Optional[Outcome] = None, assigns: Optional[dict] = None) -> Outcome:
    """Stop the channel: ``normal``/``shutdown`` close it with ``phx_close``,
    any other reason is a crash (``phx_error``). ``reply`` (an :func:`ok` or
    :func:`error`) is sent first."""
    first = None
    if reply is not None:
        if not isinstance(reply.action, ch.Action_Reply):
            raise TypeError("stop(reply=...) takes ok(...) or error(...)")
        first = reply.action.value
    return Outcome(ch.Action_Stop(ch.Stop(reason, first)), assigns)


def joined(reply: Any = None, *, assigns: Optional[dict] = None) -> Join:
    """Accept the join; the client's reply is ``reply`` (``{}`` by default)."""
    return Join(True, {} if reply is None else reply, assigns)


def refused(reason: Any) -> Join:
    """Refuse the join. A string becomes ``{"reason": reason}``, Phoenix's
    convention; any other JSON value is sent as is."""
    return Join(False, {"reason": reason} if isinstance(reason, str) else reason)


def push_out(value: Optional[Value] = None, *, assigns: Optional[dict] = None) -> Outcome:
    """``handle_out``: push the broadcast (changed to ``value`` if given)."""
    return Outcome(ch.OutAction_Push(None if value is None else to_wit(value)), assigns)


def drop_out(*, assigns: Optional[dict] = None) -> Outcome:
    """``handle_out``: do not push the broadcast to this client."""
    return Outcome(ch.OutAction_Drop(), assigns)


def assigns_text(assigns: Optional[dict]) -> Optional[str]:
    return None if assigns is None else dumps(assigns)
