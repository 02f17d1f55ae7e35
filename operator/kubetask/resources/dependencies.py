"""Task dependencies (spec.after) as a graph: finding a cycle. Pure; the operator (which fails the
Tasks in a cycle) and the gateway (which refuses a submission that would close one) share it."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["dependency_cycle"]


def dependency_cycle(start: str, after_of: Callable[[str], tuple[str, ...]], limit: int = 1000) -> tuple[str, ...]:
    """A path start → ... → start through spec.after, if there is one (names in order), else ().
    Depth-first over what the indexes know; Tasks that do not exist yet end a path."""
    path: list[str] = [start]
    seen: set[str] = set()

    def walk(name: str) -> bool:
        for upstream in after_of(name):
            if upstream == start:
                path.append(start)
                return True
            if upstream in seen or len(seen) >= limit:
                continue
            seen.add(upstream)
            path.append(upstream)
            if walk(upstream):
                return True
            path.pop()
        return False

    return tuple(path) if walk(start) else ()
