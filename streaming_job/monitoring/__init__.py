"""Monitoring: the progress listener, status log and metrics, backlog, heartbeat and liveness."""
