"""Queue admission: which waiting Tasks get a Job now. Pure; the operator serializes calls per queue."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A Task waiting in a queue."""

    uid: str
    name: str
    priority: int
    created: str  # RFC 3339 creationTimestamp: first come, first served within a priority
    gpu: int = 0


@dataclass(frozen=True)
class QueueState:
    max_running: int
    running: int
    max_gpus: int | None = None
    running_gpus: int = 0
    paused: bool = False


def admission_order(candidates: list[Candidate]) -> list[Candidate]:
    """Higher priority first, then older first; the name breaks exact ties deterministically."""
    return sorted(candidates, key=lambda c: (-c.priority, c.created, c.name))


def admit(candidates: list[Candidate], queue: QueueState) -> list[Candidate]:
    """The Tasks to start now, in order. Strict order: a Task never overtakes a higher-ranked one
    that is waiting for GPUs (no starvation of big Tasks by a stream of small ones)."""
    if queue.paused:
        return []
    slots = queue.max_running - queue.running
    gpus_left = None if queue.max_gpus is None else queue.max_gpus - queue.running_gpus
    admitted: list[Candidate] = []
    for candidate in admission_order(candidates):
        if slots <= 0:
            break
        if gpus_left is not None and candidate.gpu > gpus_left:
            break
        admitted.append(candidate)
        slots -= 1
        if gpus_left is not None:
            gpus_left -= candidate.gpu
    return admitted


@dataclass(frozen=True)
class RateWindow:
    """A queue's rateLimit: at most `starts` starts in any window of `per` seconds."""

    starts: int
    per: float
    per_text: str = ""  # as the spec says it, e.g. 1m

    def describe(self) -> str:
        return f"{self.starts} starts per {self.per_text or f'{self.per:g}s'}"

    def allowance(self, recent_starts: list[float], now: float) -> int:
        """How many Tasks may start now, given the recorded start times (seconds since the epoch).
        A sliding window over real start times rather than a token counter: the start times are
        recorded in the cluster (Jobs' creation, Tasks' status.startTime), so after a restart the
        limit is derived again from them and holds."""
        in_window = sum(1 for t in recent_starts if t > now - self.per)
        return max(0, self.starts - in_window)

    def estimates(self, recent_starts: list[float], now: float, waiting: int) -> list[float]:
        """When each of `waiting` further Tasks may start at the earliest, in admission order,
        once the limit is reached: the k-th waits for the k-th oldest start in the window to age
        out (and whole windows more past `starts` of them). Stable while starts keep to it, so
        a waiting Task's status is not rewritten every window."""
        window = sorted(t for t in recent_starts if t > now - self.per)[-self.starts:]
        # Fewer than `starts` in the window: the free slots count as used now (the caller has
        # just used them), which is the earliest they can come round again.
        window = sorted([now] * (self.starts - len(window)) + window)
        return [max(now, window[k % self.starts] + self.per * (k // self.starts + 1)) for k in range(waiting)]
