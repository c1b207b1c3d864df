"""The channel base class, and the adapter componentize-py calls."""

import json
from typing import Any, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import channel_handler as ch
from wit_world.imports import types

from . import log
from .payload import Payload, dumps
from .results import Join, Outcome, assigns_text, joined, noreply, push_out
from .socket import Socket


class Channel:
    """A kind of channel. Override the callbacks you need; the others act
    as Phoenix's defaults (join accepts, unknown events crash, broadcasts
    pass through, messages are ignored)."""

    intercepts: List[str] = []
    """Events whose broadcasts pass through :meth:`handle_out`."""

    def join(self, topic: str, payload: Payload, socket: Socket) -> Join:
        return joined()

    def handle_in(self, event: str, payload: Payload, socket: Socket) -> Outcome:
        raise NotImplementedError(f"no handle_in for {event!r}")

    def handle_out(self, event: str, payload: Payload, socket: Socket) -> Outcome:
        return push_out()

    def handle_info(self, message: Any, socket: Socket) -> Outcome:
        return noreply()

    def terminate(self, reason: str, socket: Socket) -> None:
        pass

    def upgrade(self, from_version: str, assigns: dict) -> Optional[dict]:
        """A new version went live: the channel's new assigns, or ``None``
        to keep them. Raising ends the channel with ``phx_error``."""
        return None


def _crash(callback: str, error: BaseException) -> None:
    """Log an uncaught exception before it traps the instance: the plugin
    has no stderr, so the log is where its author will look."""
    log.error(f"plugin crashed in {callback}: {type(error).__name__}: {error}")


def export(channel_class: type) -> type:
    """The ``ChannelHandler`` componentize-py exports, calling a
    :class:`Channel` subclass's callbacks with Python values."""
    channel = channel_class()

    class ChannelHandler(exports.ChannelHandler):
        def join(self, topic: str, payload: types.Payload, socket: types.Socket) -> ch.Joined:
            try:
                result = channel.join(topic, Payload(payload), Socket(socket))
            except BaseException as e:
                _crash("join", e)
                raise
            if not result.accepted:
                raise Err(dumps(result.payload))
            return ch.Joined(dumps(result.payload), assigns_text(result.assigns))

        def handle_in(self, event: str, payload: types.Payload, socket: types.Socket) -> ch.Handled:
            try:
                result = channel.handle_in(event, Payload(payload), Socket(socket))
            except BaseException as e:
                _crash("handle_in", e)
                raise
            return ch.Handled(result.action, assigns_text(result.assigns))

        def handle_out(self, event: str, payload: types.Payload, socket: types.Socket) -> ch.OutHandled:
            try:
                result = channel.handle_out(event, Payload(payload), Socket(socket))
            except BaseException as e:
                _crash("handle_out", e)
                raise
            return ch.OutHandled(result.action, assigns_text(result.assigns))

        def handle_info(self, message: str, socket: types.Socket) -> ch.InfoHandled:
            try:
                result = channel.handle_info(json.loads(message), Socket(socket))
            except BaseException as e:
                _crash("handle_info", e)
                raise
            action = result.action
            if isinstance(action, ch.Action_Stop):
                info: ch.InfoAction = ch.InfoAction_Stop(action.value.reason)
            elif isinstance(action, ch.Action_Noreply):
                info = ch.InfoAction_Noreply()
            else:
                raise TypeError("handle_info returns noreply() or stop(...), not a reply")
            return ch.InfoHandled(info, assigns_text(result.assigns))

        def terminate(self, reason: str, socket: types.Socket) -> None:
            try:
                channel.terminate(reason, Socket(socket))
            except BaseException as e:
                _crash("terminate", e)
                raise

        def intercepts(self) -> List[str]:
            return list(channel.intercepts)

        def upgrade(self, from_version: str, assigns: str) -> Optional[str]:
            try:
                changed = channel.upgrade(from_version, json.loads(assigns))
            except Exception as e:
                raise Err(f"{type(e).__name__}: {e}") from None
            return assigns_text(changed)

    ChannelHandler.__name__ = ChannelHandler.__qualname__ = "ChannelHandler"
    return ChannelHandler
