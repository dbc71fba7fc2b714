"""Spark's Python worker daemon, with the workers' libraries imported once, before it forks them.

Spark starts one daemon per executor (`pyspark.daemon`) and forks each Python worker from it. Every
worker then imported what a featurizing task needs (pandas, pyarrow, Pillow, LiteRT, this package
and pyiceberg through it), about a second of CPU per worker; imported here, they are inherited by
every fork (`spark.python.daemon.module`, session.py). TensorFlow is not imported: the Keras
runtime imports it in the worker, after sizing its thread pools (worker_cache.configure_threads).

Run by Spark as `python -m streaming_job.worker_daemon pyspark.worker`, as it runs
`pyspark.daemon`: an import that fails here is left to the worker, which reports it as before.
PySpark itself comes from the installed package, not from the zip Spark puts first on the path
(without_shadowing_zips).
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import PathFinder
from pathlib import Path

PRELOADED = (
    "pandas",
    "pyarrow",
    "PIL.Image",
    "ai_edge_litert.interpreter",
    "pyspark.worker",
    "streaming_job.query.stream",
)


def without_shadowing_zips(path: list[str]) -> list[str]:
    """`path` less the PySpark and py4j zips of the installed `pyspark` package, when it is installed.

    Spark starts the daemon with `<SPARK_HOME>/python/lib/pyspark.zip` and py4j's zip first on
    PYTHONPATH. A zip holds no compiled module and Python keeps nothing it compiles from one, so each
    daemon compiled PySpark from source. Locally SPARK_HOME is the pip-installed package, whose same
    files pip byte-compiled: those are imported instead. A zip elsewhere, or one whose package is not
    installed beside it, is kept.
    """
    directories = [entry for entry in path if not entry.endswith(".zip")]
    pyspark = PathFinder.find_spec("pyspark", directories)
    if pyspark is None or pyspark.origin is None:
        return path
    bundled = Path(pyspark.origin).parent / "python" / "lib"
    py4j_installed = PathFinder.find_spec("py4j", directories) is not None

    def shadowing(entry: str) -> bool:
        zip_file = Path(entry)
        return (
            entry.endswith(".zip")
            and zip_file.parent == bundled
            and (py4j_installed or not zip_file.name.startswith("py4j"))
        )

    return [entry for entry in path if not shadowing(entry)]


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
    sys.path[:] = without_shadowing_zips(sys.path)
    preload()
    from pyspark.daemon import manager

    manager()
