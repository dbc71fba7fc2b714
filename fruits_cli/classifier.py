"""`fruits classifier`: train the fruit classifier on the lake's features, export the app's on-device model.

  train       reads the labelled rows of the features table, trains (deterministic split and seed),
              reports held-out accuracy, publishes models/classifier/<version>/ and latest.json
  export-app  one .tflite (uint8 RGB in, class probabilities out: featurizer + PCA + classifier),
              its labels file and models/app/latest.json, for the upload API's download route

Refusals (unknown labels, a class with too few rows, an empty or mixed table, a lake without
models/, a truncated classifier or one of another PCA version) are one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import join_uri, validate_lake_uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    train = actions.add_parser("train", help="train and publish the classifier", description=__doc__)
    export = actions.add_parser("export-app", help="write the app's on-device model", description=__doc__)
    for action in (train, export):
        action.add_argument("--lake", default=os.environ.get("FRUITS_LAKE"), help="the lake (FRUITS_LAKE)")
        action.add_argument("--json", action="store_true", help="print the report as one JSON object")
    export.add_argument(
        "--featurizer",
        help=f"featurizer artifact (default <lake>/{contracts.FEATURIZER_KEY}): its input size",
    )
    export.add_argument("--pca", help=f"fitted PCA (default <lake>/{contracts.PCA_KEY})")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from streaming_job.scoring.classifier import ClassifierError

    if not args.lake:
        raise ConfigError("--lake (or FRUITS_LAKE) is required")
    lake = validate_lake_uri(args.lake, "--lake")
    try:
        report = _train(lake) if args.action == "train" else _export(lake, args)
    except ClassifierError as error:
        print(f"fruits classifier {args.action}: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("\n".join(f"{name:22} {value}" for name, value in report.items()))
    return 0


def _train(lake: str) -> dict:
    from fruits_classifier.training import train_classifier

    return train_classifier(lake).as_dict(lake)


def _export(lake: str, args: argparse.Namespace) -> dict:
    from fruits_classifier.app_model import export_app_model

    featurizer = args.featurizer or join_uri(lake, contracts.FEATURIZER_KEY)
    pca = args.pca or join_uri(lake, contracts.PCA_KEY)
    return export_app_model(lake, featurizer, pca)
