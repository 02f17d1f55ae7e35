"""`kubetask`: the command-line client of the kubetask gateway (see docs/cli.md).

It talks only to the gateway's REST API (httpx), never to the Kubernetes API directly, and imports
nothing from the gateway or the operator, so it stays quick to start.
"""
