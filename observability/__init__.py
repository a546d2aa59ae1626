"""Seeing inside the running service: metrics, structured logs, request ids, traces.

It imports no domain app: the domain imports it (a one-line count where something happens).
The metrics port itself is served by server.metrics_port; docs/operating.md lists every metric.
"""
