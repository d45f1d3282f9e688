"""The values of a sample in a simulated engine's body, for the tests of the bodies."""

from __future__ import annotations

import re


def value_of(body: bytes, name: str) -> list[bytes]:
    """The values on the sample lines of `name` (as written, or escaped)."""
    names = {name.encode(), name.replace(":", "_").encode()}
    return [
        line.rsplit(b" ", 1)[1]
        for line in body.split(b"\n")
        if re.split(rb"[{ ]", line, maxsplit=1)[0] in names
    ]
