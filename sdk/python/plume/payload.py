"""Message payloads: JSON or binary, in one place.

A payload crosses the WIT boundary as the ``payload`` variant: JSON text,
or bytes when the client sent a V2 binary frame. A channel reads one as a
:class:`Payload` and answers with any JSON value, ``bytes`` (a binary
frame), or a received :class:`Payload` handed back untouched.
"""

import json
from typing import Any, Union

from wit_world.imports import types


class PayloadError(ValueError):
    """A payload is not what the channel expected: binary when JSON was
    wanted, JSON text that does not parse, or a value JSON cannot carry."""


class Payload:
    """A payload from the host: JSON text or bytes, parsed on demand."""

    __slots__ = ("_wit",)

    def __init__(self, wit: types.Payload):
        self._wit = wit

    @property
    def is_binary(self) -> bool:
        return isinstance(self._wit, types.Payload_Binary)

    @property
    def binary(self) -> bytes:
        """The bytes of a binary payload; :class:`PayloadError` for JSON."""
        if not isinstance(self._wit, types.Payload_Binary):
            raise PayloadError("expected a binary payload, got JSON")
        return self._wit.value

    @property
    def text(self) -> str:
        """The JSON text as the client sent it; :class:`PayloadError` for
        a binary payload."""
        if not isinstance(self._wit, types.Payload_Json):
            raise PayloadError("expected a JSON payload, got binary")
        return self._wit.value

    def json(self) -> Any:
        """The JSON value; :class:`PayloadError` when the payload is binary
        or not JSON."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as e:
            raise PayloadError(f"the payload is not JSON: {e}") from None

    def get(self, key: str, default: Any = None) -> Any:
        """``payload.json()[key]`` when the payload is a JSON object,
        ``default`` otherwise (binary, not JSON, not an object, no key)."""
        try:
            value = self.json()
        except PayloadError:
            return default
        return value.get(key, default) if isinstance(value, dict) else default

    def __repr__(self) -> str:
        if isinstance(self._wit, types.Payload_Binary):
            return f"Payload(binary, {len(self._wit.value)} bytes)"
        return f"Payload({self._wit.value!r})"


Value = Union[Payload, bytes, bytearray, Any]
"""What a channel may send: a :class:`Payload` (passed on untouched),
bytes (a binary frame) or any JSON value."""


def to_wit(value: Value) -> types.Payload:
    """The WIT payload for a value a channel sends."""
    if isinstance(value, Payload):
        return value._wit
    if isinstance(value, (bytes, bytearray, memoryview)):
        return types.Payload_Binary(bytes(value))
    return types.Payload_Json(dumps(value))


def dumps(value: Any) -> str:
    """Compact JSON text with keys in order, as Phoenix writes a map (Jason
    encodes the small maps of a Phoenix reply with sorted keys), so a
    Python channel's frames are byte for byte a Phoenix app's."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise PayloadError(f"cannot send {type(value).__name__} as JSON: {e}") from None
