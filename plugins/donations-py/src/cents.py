"""Money as integer cents: parsed from and rendered to decimal strings
exactly, so ``0.10 + 0.20`` is ``0.30`` and never a float's neighbour."""

import re
from typing import Optional

# The largest amount kept, as the Rust channel's u64 cents.
MAX = 2**64 - 1

_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?")


def parse_positive(text: object) -> Optional[int]:
    """A positive decimal with at most two places (``"10"``, ``"25.5"``,
    ``"0.01"``) as cents; ``None`` for anything else: zero, a sign, an
    exponent, a third place, a bare point, whitespace, or more than fits."""
    if not isinstance(text, str):
        return None
    match = _DECIMAL.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match.group(1), match.group(2) or ""
    cents = int(whole) * 100 + int(fraction.ljust(2, "0") or "0")
    return cents if 0 < cents <= MAX else None


def render(cents: int) -> str:
    """The amount with exactly two places: ``"10.50"``."""
    return f"{cents // 100}.{cents % 100:02d}"
