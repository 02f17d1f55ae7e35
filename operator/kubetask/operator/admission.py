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
