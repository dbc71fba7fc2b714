"""`fruits demo`: the local end-to-end demo on real images (what `make demo` runs)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from streaming_job.featurizer.model import DEFAULT_RUNTIME, DEFAULT_WEIGHTS, RUNTIMES, WEIGHT_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of <label>/<image> files (default: the bundled sample images)",
    )
    parser.add_argument(
        "--train-images",
        type=Path,
        default=None,
        help="folder of <label>/<image> files the classifier is trained on first, 1 in 5 kept unseen "
        "(default: the bundled sample images)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("work") / "demo",
        help="where the lake, uploads and plots go (default ./work/demo; models are reused)",
    )
    parser.add_argument(
        "--input-size", type=int, default=224, help="featurizer input size in pixels (default 224)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=DEFAULT_RUNTIME,
        help=f"featurizer runtime: litert (int8, fast) or keras (float32) (default {DEFAULT_RUNTIME})",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default=DEFAULT_WEIGHTS,
        help=f"featurizer weights (default {DEFAULT_WEIGHTS}, the bundled ImageNet model; "
        "seeded and imagenet need --runtime keras)",
    )
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="give up waiting for the stream after this many seconds (default 900)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object (last line)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="also write the summary without machine paths to this JSON file (docs/data/demo.json: "
        "the figures the docs, notebook and slides quote)",
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from demo.run import (
        DemoOptions,
        default_images_dir,
        demo_pseudonym_key,
        portable_summary,
        render_summary,
        run_demo,
    )
    from fruits_core.errors import ConfigError

    images = args.images or default_images_dir()
    if not images.is_dir():
        raise ConfigError(f"--images {images} is not a folder of <label>/<image> files")
    if args.train_images is not None and not args.train_images.is_dir():
        raise ConfigError(f"--train-images {args.train_images} is not a folder of <label>/<image> files")
    if args.runtime == "litert" and args.weights != "imagenet-int8":
        raise ConfigError(f"--weights {args.weights} runs only with --runtime keras")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {args.timeout}")
    demo_pseudonym_key()  # refuse a bad FRUITS_PSEUDONYM_KEY before minutes of work
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        images=images,
        workdir=args.workdir,
        input_size=args.input_size,
        runtime=args.runtime,
        weights=args.weights,
        master=args.master,
        timeout_seconds=args.timeout,
        train_images=args.train_images,
    )
    summary, complete = run_demo(options)
    if args.record:
        args.record.write_text(json.dumps(portable_summary(summary), indent=2, sort_keys=True) + "\n")
    print(json.dumps(summary, sort_keys=True) if args.json else render_summary(summary))
    return 0 if complete else 1
