"""The shared core of both halves: standard library only.

The ingest Lambda (through `sam build`, see lambdas/ingest/fruits_core) and the EMR job package
both ship it: contracts (key layout, record fields, reason codes), lake URIs, the one ConfigError
and the time helpers.
"""
