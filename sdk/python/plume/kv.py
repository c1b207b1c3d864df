"""The app's key-value store, with JSON values and versions.

Every write gives a key a new, larger version; :func:`compare_and_swap`
writes only if the version is still the one read, so concurrent updates
from pooled instances never lose one another's writes. :func:`update`
wraps the read-change-swap loop and says how it ended.
"""

import json
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from wit_world.imports import kv as wit

from .effects import call
from .payload import dumps


@dataclass(frozen=True)
class Versioned:
    """A JSON value and the version it was read at."""

    value: Any
    version: int


def get(key: str) -> Optional[str]:
    """The text under ``key``, ``None`` when absent."""
    entry = call(wit.get, key)
    return None if entry is None else entry.value


def get_json(key: str) -> Optional[Versioned]:
    """The JSON value under ``key`` with its version, ``None`` when absent.
    A value that is not JSON raises ``ValueError``."""
    entry = call(wit.get, key)
    if entry is None:
        return None
    return Versioned(json.loads(entry.value), entry.version)


def set(key: str, value: str, ttl_ms: Optional[int] = None) -> int:
    """Write text; returns the new version."""
    return call(wit.set, key, value, ttl_ms)


def set_json(key: str, value: Any, ttl_ms: Optional[int] = None) -> int:
    """Write a JSON value; returns the new version."""
    return call(wit.set, key, dumps(value), ttl_ms)


def delete(key: str) -> bool:
    """Remove ``key``; whether it existed."""
    return call(wit.delete, key)


def compare_and_swap(key: str, expected: Optional[int], value: Any, ttl_ms: Optional[int] = None) -> Optional[int]:
    """Write the JSON ``value`` only if ``key`` is still at version
    ``expected`` (``None``: only if absent). The new version, or ``None``
    when another write came first."""
    return call(wit.compare_and_swap, key, expected, dumps(value), ttl_ms)


def increment(key: str, delta: int = 1, ttl_ms: Optional[int] = None) -> int:
    """Add ``delta`` to an integer value (absent counts as 0); the sum."""
    return call(wit.increment, key, delta, ttl_ms)


def list_prefix(prefix: str, limit: int = 100) -> List[Tuple[str, Versioned]]:
    """Keys starting with ``prefix``, in key order, with their JSON values."""
    return [(key, Versioned(json.loads(e.value), e.version)) for key, e in call(wit.list_by_prefix, prefix, limit)]


@dataclass(frozen=True)
class Updated:
    """How :func:`update` ended. ``written`` says whether the value was
    stored; ``value`` and ``version`` are what the key holds now (the
    value read when the change declined); ``reason`` says why nothing was
    written: ``"declined"`` (the change returned :data:`DECLINE`) or
    ``"contended"`` (every attempt lost a race)."""

    written: bool
    value: Any
    version: Optional[int]
    attempts: int
    reason: Optional[str] = None


DECLINE = object()
"""Return this from an :func:`update` change to write nothing."""


def update(key: str, change: Callable[[Any], Any], *, default: Any = None, attempts: int = 16,
           ttl_ms: Optional[int] = None) -> Updated:
    """Read ``key`` (``default`` when absent), apply ``change`` and write the
    result with compare-and-swap, again from a fresh read when another
    write came first, at most ``attempts`` times."""
    current = None
    for attempt in range(1, attempts + 1):
        current = get_json(key)
        value = default if current is None else current.value
        changed = change(value)
        if changed is DECLINE:
            return Updated(False, value, None if current is None else current.version, attempt, "declined")
        version = compare_and_swap(key, None if current is None else current.version, changed, ttl_ms)
        if version is not None:
            return Updated(True, changed, version, attempt)
    return Updated(False, None if current is None else current.value,
                   None if current is None else current.version, attempts, "contended")
