"""Reading the API server's streamed answers: watch lines, and LIST answers item by item.

A WATCH answer is one JSON event per line; `lines` splits the body as it arrives and
skips a line over its limit (the caller counts it) instead of buffering it.

A LIST answer is decoded as it arrives, one item at a time, with `ijson` (its C backend,
yajl2_c, comes in its wheels): `ListDecoder` hands over each item as soon as it is
complete, for the caller to convert into a `PodMeta` or `NamespaceMeta` and drop.
Reading 1,000 pods (~10 MB of JSON) whole and decoding them with `json.loads` left the
process ~60 MB larger for good: the few objects kept were scattered among the freed
temporaries, and the allocator could not give that memory back. Streamed, the
temporaries at any moment are one read chunk's parse events and one item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import aiohttp
import ijson

from exporter.errors import ErrorKind
from exporter.sources.kubernetes.errors import AttemptError, MalformedError

FAST_BACKEND: Final = "yajl2_c"  # what ijson's wheels ship; without it ijson picks another


async def lines(stream: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes | None]:
    """The lines of a streamed body; None stands for a line over `limit` (skipped)."""
    buffer = bytearray()
    skipping = False
    async for chunk in stream.iter_any():
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > limit:
                        buffer.clear()
                        skipping = True
                        yield None
                break
            if skipping:
                skipping = False
            else:
                buffer += chunk[start:end]
                yield bytes(buffer)
                buffer.clear()
            start = end + 1
    if buffer and not skipping:
        yield bytes(buffer)


async def read_list(
    content: aiohttp.StreamReader,
    name: str,
    keep: Callable[[list[Any]], None],
    *,
    chunk_bytes: int,
    max_bytes: int,
) -> str:
    """Reads a LIST answer `chunk_bytes` at a time, handing each read's completed items
    to `keep`; returns the list's resourceVersion. An answer over `max_bytes`, or one
    that is not a list, raises `AttemptError(ErrorKind.DECODE)`."""
    decoder, received = ListDecoder(), 0
    try:
        async for chunk in content.iter_chunked(chunk_bytes):
            received += len(chunk)
            if received > max_bytes:
                raise AttemptError(ErrorKind.DECODE, f"the {name} list is over {max_bytes} bytes")
            keep(decoder.feed(chunk))
        version, items = decoder.close()
    except (ijson.JSONError, ValueError) as exc:
        error = " ".join(str(exc).split())[:300]  # yajl's are several lines
        raise AttemptError(ErrorKind.DECODE, f"cannot decode the {name} list: {error}") from exc
    keep(items)
    return version


_STARTS: Final = frozenset({"start_map", "start_array"})
_ENDS: Final = frozenset({"end_map", "end_array"})
_LIST_FIELDS: Final = {"items": ("start_array", "an array"), "metadata": ("start_map", "an object")}


class ListDecoder:
    """A LIST answer, `{"metadata": {"resourceVersion": ...}, "items": [...]}`, decoded
    as its bytes arrive.

    `feed()` takes the next bytes and returns the items they completed, each a plain
    decoded JSON value; `close()` ends the document and returns the list's
    resourceVersion. Only the item being built and one chunk's parse events exist at a
    time, never the whole list. Raises `ijson.JSONError` for what is not JSON and
    `MalformedError` for JSON that is not a list answer (not an object, `metadata`
    not an object, `items` not an array, no resourceVersion). Everything else in the
    answer is skipped.
    """

    def __init__(self, backend: Any = ijson) -> None:  # an ijson backend module, or ijson
        self._events: list[tuple[str, Any]] = ijson.sendable_list()
        self._parser = backend.basic_parse_coro(self._events, use_float=True)
        # The containers around the current value, outside any item: "list" (the
        # answer), "metadata" (its metadata), "items" (its items) or "" (skipped).
        self._outer: list[str] = []
        self._key = ""  # the key of the next value in the innermost outer object
        self._item: list[Any] = []  # the containers of the item being built, outermost first
        self._item_key = ""  # the key of the next value in the item's innermost object
        self._resource_version: str | None = None

    def feed(self, chunk: bytes) -> list[Any]:
        self._parser.send(chunk)
        return self._drain()

    def close(self) -> tuple[str, list[Any]]:
        """The list's resourceVersion and the items the last bytes completed."""
        self._parser.close()  # IncompleteJSONError when the document was cut short
        items = self._drain()
        if not self._resource_version:
            raise MalformedError("missing resourceVersion")
        return self._resource_version, items

    def _drain(self) -> list[Any]:
        done: list[Any] = []
        item, outer = self._item, self._outer
        for event, value in self._events:
            if item:  # inside an item: build it
                if event == "map_key":
                    self._item_key = value
                    continue
                if event in _ENDS:
                    finished = item.pop()
                    if not item:
                        done.append(finished)
                    continue
                if event == "start_map":
                    value = {}
                elif event == "start_array":
                    value = []
                parent = item[-1]
                if type(parent) is list:
                    parent.append(value)
                else:
                    parent[self._item_key] = value
                if event in _STARTS:
                    item.append(value)
                continue
            if event == "map_key":
                self._key = value
                continue
            if event in _ENDS:
                outer.pop()
                continue
            role = self._role(outer[-1] if outer else None, event, value)
            if role == "item":
                if event in _STARTS:
                    item.append({} if event == "start_map" else [])
                else:
                    done.append(value)  # not an object: the caller counts it as malformed
            elif event in _STARTS:
                outer.append(role)
        del self._events[:]
        return done

    def _role(self, where: str | None, event: str, value: object) -> str:
        """What the value that `event` starts is, given the container it is in."""
        if where is None:
            if event != "start_map":
                raise MalformedError("the list is not an object")
            return "list"
        if where == "items":
            return "item"
        if where == "list" and self._key in _LIST_FIELDS:
            start, what = _LIST_FIELDS[self._key]
            if event == start:
                return self._key
            if event != "null":  # null: as if absent
                raise MalformedError(f"{self._key} is not {what}")
        elif where == "metadata" and self._key == "resourceVersion" and event == "string":
            self._resource_version = value if isinstance(value, str) else None
        return ""
