"""Fitting the PCA (mean-centring + Spark ML PCA) on a sample of images, as a batch job.

Usage:
    spark-submit --py-files fruits_job.zip fit_pca_main.py --lake s3://bucket[/prefix] [options]

`fruits fit-pca` runs the same code locally; `fruits deploy fit-pca` adds it as an EMR step.
Images come from the lake's clean/ area by default, or from --images (a local
folder of <label>/<image> files, or any file:// / s3:// prefix). k is fixed with
--k or chosen as the fewest components reaching --target-variance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from pathlib import Path

if __name__ == "__main__":
    # As in main.py: import the package from its parent, not this folder's modules as top-level ones.
    _HERE = Path(__file__).resolve().parent
    sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from fruits_core import contracts
from fruits_core.errors import ConfigError, exit_code_of
from fruits_core.lake_uris import add_lake_argument, join_uri, required_lake_uri

DEFAULT_SAMPLE_SIZE = 2000
# A fixed seed: the same listing gives the same sample, hence the same PCA.
SAMPLE_SEED = 0
REPLACE_FLAG = "--replace"


def add_fit_pca_arguments(parser: argparse.ArgumentParser, lake_default_help: str = "FRUITS_LAKE") -> None:
    add_lake_argument(parser, help=f"lake root, file:// or s3:// (default {lake_default_help})")
    parser.add_argument(
        "--images",
        help=f"folder or URI prefix of the images to fit on (default <lake>/{contracts.CLEAN_PREFIX})",
    )
    parser.add_argument(
        "--featurizer", help=f"featurizer artifact (default <lake>/{contracts.FEATURIZER_KEY})"
    )
    parser.add_argument("--out", help=f"output directory (default <lake>/{contracts.PCA_KEY})")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--k", type=int, help="number of principal components")
    choice.add_argument(
        "--target-variance",
        type=float,
        default=0.95,
        help="choose the fewest components explaining this share of variance (default 0.95)",
    )
    parser.add_argument(
        "--sample-size",
        type=int,
        default=DEFAULT_SAMPLE_SIZE,
        help=f"images drawn at random for the fit (default {DEFAULT_SAMPLE_SIZE})",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument(
        REPLACE_FLAG,
        action="store_true",
        help="overwrite a PCA already at the output (the features table's vectors were projected with "
        "it: restart the stream with --new-model-table afterwards)",
    )
    parser.add_argument(
        "--master",
        default=os.environ.get("FRUITS_SPARK_MASTER"),
        help="Spark master (default: spark-submit's; `fruits fit-pca` uses local[*])",
    )


def run_fit_pca(args: argparse.Namespace) -> int:
    """Fit and write the PCA; print its summary as JSON. 1 when the fit fails, ConfigError on bad flags."""
    from streaming_job import uris
    from streaming_job.featurizer.model import FeaturizerError
    from streaming_job.featurizer.pca import PcaError, fit_pca
    from streaming_job.session import command_session

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lake = required_lake_uri(args.lake and uris.to_uri(args.lake))
    images_prefix = uris.to_uri(args.images) if args.images else join_uri(lake, contracts.CLEAN_PREFIX)
    featurizer = uris.to_uri(args.featurizer) if args.featurizer else join_uri(lake, contracts.FEATURIZER_KEY)
    out = uris.to_uri(args.out) if args.out else join_uri(lake, contracts.PCA_KEY)
    _validate(args)
    if not args.replace:
        refuse_to_replace(out)
    image_uris = sample_images(uris.list_uris(images_prefix), args.sample_size)
    needed = (args.k + 1) if args.k else 2
    if len(image_uris) < needed:
        raise ConfigError(
            f"found {len(image_uris)} images under {images_prefix}: fitting a PCA with "
            f"k={args.k or 'auto'} needs >= {needed}"
        )
    try:
        with command_session("fruits-fit-pca", master=args.master) as spark:
            sidecar = fit_pca(
                spark,
                image_uris,
                featurizer,
                out,
                k=args.k,
                target_variance=args.target_variance,
                batch_size=args.batch_size,
            )
    except (PcaError, FeaturizerError) as error:
        print(f"fit-pca: {error}", file=sys.stderr)
        return 1
    summary = {
        key: sidecar[key] for key in ("pca_version", "model_version", "k", "sample_size", "images_failed")
    }
    summary["explained_variance_total"] = sidecar["cumulative_explained_variance"][-1]
    summary["out"] = out
    print(json.dumps(summary, indent=2))
    return 0


def refuse_to_replace(out: str) -> None:
    """ConfigError when `out` already holds a fitted PCA: the stream projects with it and its features
    table records its version, so overwriting it silently would make the next `fruits stream` refuse."""
    from streaming_job.featurizer.pca import PcaError, read_sidecar

    try:
        sidecar = read_sidecar(out)
    except PcaError:
        return
    raise ConfigError(
        f"{out} already holds PCA {sidecar.get('pca_version')} (k={sidecar.get('k')}), the one the "
        f"features table's vectors were projected with; refitting it in place makes the next "
        f"`fruits stream` refuse to start. Either write the new fit elsewhere (--out) or pass "
        f"{REPLACE_FLAG}, then restart the stream with `fruits stream --new-model-table` (the current "
        f"table is kept as fruits.features_<its pca_version>)"
    )


def sample_images(image_uris: list[str], sample_size: int) -> list[str]:
    """The image URIs (accepted suffixes only), at most `sample_size` of them, drawn reproducibly."""
    images = sorted(uri for uri in image_uris if uri.lower().endswith(contracts.ACCEPTED_UPLOAD_SUFFIXES))
    if len(images) <= sample_size:
        return images
    sampler = random.Random(SAMPLE_SEED)  # noqa: S311 - a reproducible sample, not a secret
    return sorted(sampler.sample(images, sample_size))


def _validate(args: argparse.Namespace) -> None:
    if args.k is not None and args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    if not 0 < args.target_variance <= 1:
        raise ConfigError(f"--target-variance must be in (0, 1], got {args.target_variance}")
    if args.sample_size < 2:
        raise ConfigError(f"--sample-size must be >= 2, got {args.sample_size}")
    if not 1 <= args.batch_size <= 1024:
        raise ConfigError(f"--batch-size must be in 1..1024, got {args.batch_size}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fit_pca_main.py", description=__doc__.splitlines()[0])
    add_fit_pca_arguments(parser)
    args = parser.parse_args(argv)
    return exit_code_of("fit_pca_main.py", lambda: run_fit_pca(args))


if __name__ == "__main__":
    sys.exit(main())
