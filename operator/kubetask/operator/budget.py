"""The budget for a run's intermediate status writes: coalescing when the API server is busy.

A run's intermediate states (Running with PodPending, PodRunning, Retrying, Unschedulable, a
fan-out's counts) are reports; its outcome and everything that starts work are not. When many
Tasks start at once (a burst of 2,000), writing every intermediate state costs the API server a
write per Task exactly while it is busiest creating Tasks and Jobs, and most of those states are
overwritten by the outcome moments later. So intermediate writes are limited to a rate, the
idiom of Kubernetes' own controllers (kube-controller-manager's client QPS), with one difference:
a write over the budget is not waited for on a worker. It gets a *slot*, a time when the budget
has room for it, and its Task is reconciled again then, with whatever is true by that time. A run
that ends before its slot writes only its outcome: the intermediate write was coalesced away.

This is a token bucket with reservations (golang.org/x/time/rate's `Reserve`, which client-go's
rate limiters build on), written here because the asyncio rate limiters on PyPI (aiolimiter,
asyncio-throttle) only wait for a token, and a worker must never sleep for one: the work queue
holds the key until its slot instead. Pure: the caller passes the time.
"""

from __future__ import annotations


class WriteBudget:
    """`rate` writes per second on average, `burst` at once from idle; rate 0 is unlimited."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._at: float | None = None  # when _tokens was last brought up to date

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        if self._at is None or now > self._at:
            self._at = now

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Take a token: 0.0 if one is free now, else the seconds until the one reserved for this
        write is, or None (nothing taken) if that would be more than `max_wait` away."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        wait = max(0.0, (1.0 - self._tokens) / self.rate)
        if wait > max_wait:
            return None
        self._tokens -= 1.0  # below zero: later reservations queue behind this one
        return wait

    def give_back(self, now: float) -> None:
        """A reserved write that was not needed after all (the run ended first): its token is
        free again for the writes queued behind it."""
        if self.rate <= 0:
            return
        self._refill(now)
        self._tokens = min(self.burst, self._tokens + 1.0)
