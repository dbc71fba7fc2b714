"""`fruits model export`: write the featurizer artifact (MobileNetV2 -> 1280-d features).

The default is the bundled ImageNet MobileNetV2 (int8, offline) run by LiteRT
(`.tflite`). `--runtime keras` writes the same weights dequantized into a float
Keras model (`.keras`), the reference. `--weights imagenet` asks Keras to
download its own ImageNet weights (needs the internet); `--weights seeded` is a
random MobileNetV2 with calibrated batch norms, for comparison only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import file_uri, join_uri
from streaming_job.featurizer.model import DEFAULT_RUNTIME, DEFAULT_WEIGHTS, RUNTIMES, WEIGHT_CHOICES

# The local lake `fruits demo` uses when FRUITS_LAKE is not set.
DEFAULT_LOCAL_LAKE = Path("work/demo/lake")


def default_lake() -> str:
    return os.environ.get("FRUITS_LAKE") or file_uri(DEFAULT_LOCAL_LAKE.resolve())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    export = actions.add_parser(
        "export",
        help="write the featurizer artifact (.tflite for litert, the default; .keras for keras)",
        description=__doc__.splitlines()[0],
    )
    export.add_argument(
        "--out",
        help="path, file:// or s3:// URI of the artifact: .tflite for litert, .keras for keras "
        f"(default <lake>/{contracts.MODELS_PREFIX}featurizer.<suffix>, lake from FRUITS_LAKE "
        f"or {DEFAULT_LOCAL_LAKE})",
    )
    export.add_argument(
        "--input-size",
        type=int,
        default=224,
        help="input image side in pixels (default 224; --weights imagenet: 96/128/160/192/224)",
    )
    export.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help=f"litert: int8 model in LiteRT's interpreter, ~4x faster on CPUs; keras: float32 TensorFlow "
        f"(default: from the --out suffix, else {DEFAULT_RUNTIME})",
    )
    export.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default=DEFAULT_WEIGHTS,
        help="imagenet-int8: the bundled ImageNet MobileNetV2, offline (default); "
        "imagenet: Keras' download (needs internet, --runtime keras); "
        "seeded: random weights, calibrated batch norms (--runtime keras, comparison only)",
    )
    export.add_argument(
        "--calibration-images",
        type=Path,
        help="folder of <label>/<image>.jpg used to calibrate a seeded export "
        "(default: the bundled data/fruits360-sample)",
    )


def artifact_uri(out: str | None, runtime: str | None) -> str:
    """--out (its suffix must match --runtime when both are given), else the lake's key for the runtime."""
    from streaming_job.featurizer.model import FeaturizerError, runtime_of

    if out is None:
        runtime = runtime or DEFAULT_RUNTIME
        return join_uri(default_lake(), contracts.featurizer_key(runtime))
    try:
        suffix_runtime = runtime_of(out)
    except FeaturizerError as error:
        raise ConfigError(f"--out: {error}") from error
    if runtime is not None and runtime != suffix_runtime:
        raise ConfigError(
            f"--runtime {runtime} writes a {contracts.FEATURIZER_SUFFIXES[runtime]} file, --out is {out}"
        )
    return out


def run(args: argparse.Namespace) -> int:
    from streaming_job.featurizer.model import FeaturizerError, export_featurizer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = artifact_uri(args.out, args.runtime)
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
