"""`fruits model export`: write the featurizer artifact (MobileNetV2 -> 1280-d features).

Offline (the default) the weights are a fixed-seed initialisation whose
batch-norm statistics are calibrated on the bundled real images: reproducible,
informative features, but not ImageNet features. `--weights imagenet` asks
Keras to download the ImageNet weights and fails with a clear message offline.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fruits_core import contracts
from fruits_core.lake_uris import join_uri

# The local lake `fruits demo` uses when FRUITS_LAKE is not set.
DEFAULT_LOCAL_LAKE = Path("work/demo/lake")


def default_lake() -> str:
    return os.environ.get("FRUITS_LAKE") or DEFAULT_LOCAL_LAKE.resolve().as_uri()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    export = actions.add_parser(
        "export", help="write the featurizer artifact (.keras)", description=__doc__.splitlines()[0]
    )
    export.add_argument(
        "--out",
        help="path, file:// or s3:// URI of the .keras file "
        f"(default <lake>/{contracts.FEATURIZER_KEY}, lake from FRUITS_LAKE "
        f"or {DEFAULT_LOCAL_LAKE})",
    )
    export.add_argument(
        "--input-size",
        type=int,
        default=224,
        help="input image side in pixels (default 224; ImageNet: 96/128/160/192/224)",
    )
    export.add_argument(
        "--weights",
        choices=("seeded", "imagenet"),
        default="seeded",
        help="seeded: offline, deterministic, calibrated on real images (default); "
        "imagenet: downloaded by Keras (needs internet)",
    )
    export.add_argument(
        "--calibration-images",
        type=Path,
        help="folder of <label>/<image>.jpg used to calibrate a seeded export "
        "(default: the bundled data/fruits360-sample)",
    )


def run(args: argparse.Namespace) -> int:
    from streaming_job.model import FeaturizerError, export_featurizer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or join_uri(default_lake(), contracts.FEATURIZER_KEY)
    calibration = None
    if args.calibration_images is not None:
        calibration = sorted(
            path
            for path in args.calibration_images.rglob("*")
            if path.suffix.lower() in contracts.ACCEPTED_UPLOAD_SUFFIXES
        )
    try:
        version = export_featurizer(
            out, input_size=args.input_size, weights=args.weights, calibration_images=calibration
        )
    except FeaturizerError as error:
        print(f"fruits model export: {error}", file=sys.stderr)
        return 1
    print(f"featurizer written to {out}\nmodel_version: {version}")
    return 0
