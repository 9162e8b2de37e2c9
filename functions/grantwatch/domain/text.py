"""Untrusted text (names, principals, ARNs from events) made safe to show in a notice. Pure."""

from __future__ import annotations

import unicodedata

# What untrusted text may not carry into a notice: control and format characters (line breaks, bidi
# overrides, zero-width characters), unassigned or private ones, and what chat renderers read as markup
# (<link|text>, <!channel>, `code`). None of them occurs in an AWS name or principal.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_MARKUP = frozenset("<>`")


def clean(text: str | None, limit: int = 512) -> str:
    """Untrusted text (names, principals) as one plain line: no control characters, no line breaks."""
    if text is None:
        return "-"
    flat = "".join("?" if c in _MARKUP or unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
