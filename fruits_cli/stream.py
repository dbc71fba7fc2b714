"""`fruits stream`: run the streaming featurizer (the same flags as main.py, plus --master)."""

from __future__ import annotations

import argparse
import os

from streaming_job.config import add_stream_arguments, config_from_args

LOCAL_MASTER = "local[*]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_arguments(parser)
    parser.add_argument(
        "--master",
        default=os.environ.get("FRUITS_MASTER"),
        help=f"Spark master (default {LOCAL_MASTER}; under spark-submit, spark-submit's)",
    )


def default_master() -> str | None:
    """local[*], unless spark-submit launched this interpreter (it then owns the master)."""
    return None if "PYSPARK_GATEWAY_PORT" in os.environ else LOCAL_MASTER


def run(args: argparse.Namespace) -> int:
    from streaming_job.query.runner import configure_logging, run_stream

    config = config_from_args(args)
    configure_logging()
    return run_stream(config, master=args.master or default_master())
