"""Opaque continue tokens for paginated lists served from the cache.

A token says "the items after this name, for these filters". It does not expire (unlike the API
server's, which pin a resourceVersion): a page reflects the cache when it was read, so Tasks
created while a client pages may or may not appear, as with any live list.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Sequence
from typing import Any

VERSION = 1


def filters_digest(**filters: Any) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(after: str, digest: str) -> str:
    raw = json.dumps({"v": VERSION, "a": after, "f": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, digest: str) -> str:
    """The name to continue after; ValueError if the token is malformed or was made for other filters."""
    if len(token) > 1024:
        raise ValueError("the continue token is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise ValueError("the continue token is malformed; pass back the token of the previous page unchanged") from error
    if not isinstance(data, dict) or data.get("v") != VERSION or not isinstance(data.get("a"), str) or not isinstance(data.get("f"), str):
        raise ValueError("the continue token is malformed; pass back the token of the previous page unchanged")
    if data["f"] != digest:
        raise ValueError("the continue token was issued for other filters; repeat the same type/queue/phase/labelSelector")
    return str(data["a"])


def page(names: Sequence[str], after: str | None, limit: int) -> tuple[int, int, bool]:
    """Indices [start, end) of the page in sorted `names`, and whether more follow."""
    start = bisect.bisect_right(names, after) if after is not None else 0
    end = min(start + limit, len(names))
    return start, end, end < len(names)
