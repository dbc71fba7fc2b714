"""Spark's Python worker daemon, with the workers' libraries imported once, before it forks them.

Spark starts one daemon per executor (`pyspark.daemon`) and forks each Python worker from it. Every
worker then imported what a featurizing task needs (pandas, pyarrow, Pillow, LiteRT, this package
and pyiceberg through it), about a second of CPU per worker; imported here, they are inherited by
every fork (`spark.python.daemon.module`, session.py). TensorFlow is not imported: the Keras
runtime imports it in the worker, after sizing its thread pools (worker_cache.configure_threads).

Run by Spark as `python -m streaming_job.worker_daemon pyspark.worker`, as it runs
`pyspark.daemon`: an import that fails here is left to the worker, which reports it as before.
"""

from __future__ import annotations

import importlib

PRELOADED = (
    "pandas",
    "pyarrow",
    "PIL.Image",
    "ai_edge_litert.interpreter",
    "pyspark.worker",
    "streaming_job.query.stream",
)


def preload() -> list[str]:
    """Import PRELOADED; return the modules that could not be imported (their workers will say why)."""
    missing = []
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
