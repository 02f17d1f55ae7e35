"""Prometheus metrics of the gateway, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kubetask_gateway_requests", "HTTP requests by method, route template and status code.",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "kubetask_gateway_request_duration_seconds", "Time to the end of the response (streams: their whole life).",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.cache_objects = Gauge(
            "kubetask_gateway_cache_objects", "Objects held in the watch-backed cache.", ["resource"], registry=self.registry)
        self.watch_restarts = Counter(
            "kubetask_gateway_watch_restarts", "Cache list/watch restarts by reason (gone = 410, error, ...).",
            ["resource", "reason"], registry=self.registry)
        self.reviews = Counter(
            "kubetask_gateway_auth_reviews", "TokenReviews and SubjectAccessReviews by outcome (cached answers count as cache).",
            ["kind", "outcome"], registry=self.registry)
        self.submissions = Counter(
            "kubetask_gateway_submissions", "Task submissions by outcome (created, replayed, invalid, conflict, error).",
            ["outcome"], registry=self.registry)
        self.streams = Gauge(
            "kubetask_gateway_open_streams", "Open event and log streams.", ["kind"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
