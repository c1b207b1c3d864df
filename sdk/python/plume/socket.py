"""What a callback sees of its socket and channel."""

import json
from typing import Any, Optional

from wit_world.imports import types


class Socket:
    """The channel's topic, join reference, socket id and assigns.

    ``assigns`` is a fresh dict parsed from the host's JSON: changing it
    changes nothing until a callback returns it (``assigns=...``).
    """

    __slots__ = ("topic", "join_ref", "socket_id", "assigns")

    def __init__(self, wit: types.Socket):
        self.topic: str = wit.topic
        self.join_ref: Optional[str] = wit.join_ref
        self.socket_id: Optional[str] = wit.socket_id
        try:
            assigns = json.loads(wit.assigns)
        except json.JSONDecodeError:
            assigns = {}
        self.assigns: dict = assigns if isinstance(assigns, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        """An assign, ``default`` when absent."""
        return self.assigns.get(key, default)

    def assign(self, **changes: Any) -> dict:
        """The assigns with ``changes`` applied, to return from a callback."""
        return {**self.assigns, **changes}

    @property
    def user(self) -> dict:
        """The ``user`` assign the demo's socket plugin sets
        (``{"id", "name", "role"}``), ``{}`` when there is none."""
        user = self.assigns.get("user")
        return user if isinstance(user, dict) else {}

    def __repr__(self) -> str:
        return f"Socket(topic={self.topic!r}, socket_id={self.socket_id!r}, assigns={self.assigns!r})"
