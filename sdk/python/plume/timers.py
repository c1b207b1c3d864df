"""Messages to the channel itself, delivered to ``handle_info`` as the JSON
value given here. Timers die with the channel."""

from typing import Any

from wit_world.imports import timers as wit

from .effects import call
from .payload import dumps


def send_self(message: Any) -> None:
    """Deliver ``message`` to this channel's ``handle_info`` after this call
    (what a join does to act once its reply is out)."""
    call(wit.send_self, dumps(message))


def send_after(delay_ms: int, message: Any) -> int:
    """Deliver ``message`` after ``delay_ms``; the timer's id."""
    return call(wit.send_after, delay_ms, dumps(message))


def cancel(timer: int) -> bool:
    """Cancel a pending timer; ``False`` when it already fired or never was."""
    return wit.cancel(timer)
