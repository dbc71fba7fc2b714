"""`fruits cost --images-per-day N`: monthly AWS cost estimate from the repository's price table."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

from fruits_core.errors import ConfigError

# Assumptions exposed as flags (the rest keep their documented defaults).
TUNABLE = {
    "image_kib": "average upload size in KiB, a 12 MP photo (measured: operations/unit_costs.json)",
    "clean_image_kib": "average clean image in KiB, 448 px long side (measured: operations/unit_costs.json)",
    "lambda_cpu_ms_per_image": "ingest CPU ms per 12 MP photo on a full core (measured: unit_costs.json)",
    "lambda_memory_mb": "ingest Lambda memory in MB (default 1024, as in template.yaml)",
    "compute_mode": "stream compute: serverless, ec2 (EMR on EC2) or auto, the cheaper (default auto)",
    "retention_days": "days the lake keeps clean images, manifests and features (default 30)",
    "quarantine_rate": "fraction of uploads rejected (default 0.02)",
    "trigger_seconds": "stream trigger interval in seconds (default 60, the stream's --trigger default)",
    "peak_factor": "burst image rate / average rate, sizes the maxima (default 3)",
    "images_per_vcpu_second": "stream throughput per vCPU at input size 224 (default 60, the LiteRT runtime)",
    "core_count": "on-demand core nodes (default 2)",
    "primary_type": "primary node instance type (default m7i.xlarge)",
    "core_type": "core node instance type (default m7i.2xlarge)",
    "task_type": "spot task node instance type (default m7i.2xlarge)",
    "task_min_nodes": "spot task nodes always on (default 1: ScalingMinimumUnits 3 - 2 core)",
    "spot_price_factor": "spot price as a fraction of on-demand (default 0.40)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from operations.cost import COMPUTE_MODES, Assumptions
    from operations.deploy import EU_REGIONS

    parser.add_argument("--images-per-day", type=float, required=True, help="uploaded images per day")
    parser.add_argument(
        "--region",
        default="eu-west-3",
        help=f"one of the EU regions `fruits deploy` accepts: {', '.join(EU_REGIONS)} (default eu-west-3)",
    )
    parser.add_argument(
        "--prices", type=Path, help="another price table (JSON, same layout as operations/pricing_eu.json)"
    )
    parser.add_argument("--json", action="store_true", help="print the estimate as one JSON object")
    kinds = {item.name: type(getattr(Assumptions(), item.name)) for item in fields(Assumptions)}
    for name, help_text in TUNABLE.items():
        choices = COMPUTE_MODES if name == "compute_mode" else None
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kinds[name], choices=choices, default=None, help=help_text
        )


def run(args: argparse.Namespace) -> int:
    from operations.cost import Assumptions, UnknownPriceError, estimate, format_table, load_price_table

    if args.images_per_day <= 0:
        raise ConfigError(f"--images-per-day must be > 0, got {args.images_per_day:g}")
    overrides = {name: getattr(args, name) for name in TUNABLE if getattr(args, name) is not None}
    for name, value in overrides.items():
        if isinstance(value, int | float) and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    try:
        table = load_price_table(args.prices)
        result = estimate(args.images_per_day, args.region, table, replace(Assumptions(), **overrides))
    except UnknownPriceError as error:
        raise ConfigError(str(error)) from error
    print(json.dumps(result.as_dict()) if args.json else format_table(result))
    return 0
