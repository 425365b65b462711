"""Text from the data made safe for a terminal: escape sequences and control
characters removed, long values cut, before anything prints them."""

from __future__ import annotations

import re

# CSI (ESC [ ... final) and OSC (ESC ] ... BEL or ESC \) sequences go whole, so
# no printable remnant such as "[31m" is left behind; then every other C0/C1
# control character, and the bidirectional overrides that reorder what is shown.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_WIDTH = 40


def clean(value: object, max_width: int | None = MAX_WIDTH) -> str:
    """`value` as one printable line of at most `max_width` characters (cut with "…");
    `max_width=None` keeps it whole (a report page, a list the user must read in full)."""
    text = _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", str(value)))
    if max_width is not None and len(text) > max_width:
        return text[: max_width - 1] + "…"
    return text
