"""Time as the host sees it (a plugin has no clock of its own)."""

from wit_world.imports import clock as wit


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return wit.now_ms()


def monotonic_ns() -> int:
    """Nanoseconds from an arbitrary fixed point; never goes back."""
    return wit.monotonic_ns()
