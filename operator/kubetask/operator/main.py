"""`kubetask-operator`: run the operator (Kopf) with metrics and a liveness endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf
from kopf._core.engines.peering import Identity  # a NewType of str; Kopf does not export it
from prometheus_client import start_http_server

from kubetask.operator import handlers, kopf_fixes, leader
from kubetask.operator.config import OperatorSettings


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

    # Active/standby: Kopf runs only while this process holds the leader Lease.
    asyncio.run(leader.lead(settings, operate) if settings.leader_election else operate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
