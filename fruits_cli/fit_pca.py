"""`fruits fit-pca`: fit the PCA locally (the job's streaming_job/fit_pca_main.py, master local[*])."""

from __future__ import annotations

import argparse

from fruits_cli.model import DEFAULT_LOCAL_LAKE, default_lake
from streaming_job.fit_pca_main import add_fit_pca_arguments, run_fit_pca

LOCAL_MASTER = "local[*]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fit_pca_arguments(parser, lake_default_help=f"FRUITS_LAKE or {DEFAULT_LOCAL_LAKE}")


def run(args: argparse.Namespace) -> int:
    args.lake = args.lake or default_lake()
    args.master = args.master or LOCAL_MASTER
    return run_fit_pca(args)
