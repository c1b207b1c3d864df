"""Phoenix.Presence for the channel's topic. A server without presence
raises :class:`~plume.HostError` with ``kind == "not-enabled"``."""

import json
from typing import Any, Optional

from wit_world.imports import presence as wit

from .effects import call
from .payload import dumps


def track(key: str, meta: dict) -> str:
    """Track this channel under ``key`` with ``meta``; the meta's ``phx_ref``."""
    return call(wit.track, key, dumps(meta))


def update(key: str, meta: dict) -> str:
    """Replace this channel's meta under ``key``; the new ``phx_ref``."""
    return call(wit.update, key, dumps(meta))


def untrack(key: str) -> None:
    call(wit.untrack, key)


def list(topic: Optional[str] = None) -> Any:
    """The presences of ``topic`` (this channel's by default), as phoenix.js
    reads them: ``{"<key>": {"metas": [...]}}``."""
    return json.loads(call(wit.list, topic))


def count(topic: Optional[str] = None) -> int:
    """The number of keys present on ``topic`` (this channel's by default)."""
    return call(wit.count, topic)


def push_state() -> None:
    """Push ``presence_state`` to this channel's client (after a join)."""
    call(wit.push_state)
