"""`kubetask-operator`: run the operator (Kopf) with metrics and a liveness endpoint."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

import kopf
from kopf._core.engines.peering import Identity  # a NewType of str; Kopf does not export it
from prometheus_client import start_http_server

from kubetask.operator import handlers, kopf_fixes, leader
from kubetask.operator.config import OperatorSettings


# Python's cyclic garbage collector, set for a process whose heap is mostly long-lived (Kopf's
# per-object state, the indexes) while every watch event allocates many short-lived objects. With
# the defaults (700, 10, 10) collections took 13 % of the operator's CPU in a burst, most of it in
# full collections that walk the whole heap (1.5 s of 20 s, measured with gc.callbacks); with
# these, 7 %, and no full collection in the burst (docs/benchmarks.md). Cyclic garbage waits a
# little longer to be freed; reference counting frees everything else at once, as before.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Freeze what start-up made (modules, classes, functions: never garbage) out of every later
    collection, then collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the kubetask operator. Settings come from KUBETASK_* variables.")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    handlers.State.settings = settings
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
        log_prefix=False,
    )
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else settings.log_level)
    if not args.verbose:
        # One line per request or handler call is noise at scale; transitions are logged by us.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if not kopf_fixes.apply():
        logging.getLogger("kubetask.operator").warning("Kopf's ToggleSet is not the code kopf_fixes was verified against (Kopf %s); "
                                                       "running it unpatched: start-up with many Tasks may be slow", kopf_fixes.VERIFIED_KOPF)
    if not kopf_fixes.apply_watch_decoding():
        logging.getLogger("kubetask.operator").warning("Kopf's watch stream is not the code kopf_fixes was verified against (Kopf %s); "
                                                       "its events are decoded by the standard library (slower)", kopf_fixes.VERIFIED_KOPF)
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    namespaces = settings.namespaces

    async def operate() -> None:
        await kopf.operator(
            registry=handlers.registry,
            standalone=True,  # no Kopf peering: the leader Lease (leader.py) decides who acts
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://{settings.metrics_host}:{settings.health_port}/healthz",
            # Without one, Kopf makes it with getpass.getuser(), which raises for a uid that has no
            # passwd entry: the image's user 65532, a chart's runAsUser, OpenShift's random uids.
            identity=Identity(leader.make_identity()),
        )

    tune_gc()
    # Active/standby: Kopf runs only while this process holds the leader Lease.
    asyncio.run(leader.lead(settings, operate) if settings.leader_election else operate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
