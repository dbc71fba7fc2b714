"""EMR and IAM, cost, GDPR, choices, limits."""

from __future__ import annotations

from slides.drawing import Deck, bullets, table
from slides.sources import COST_GROUPS, Figures, fmt_ratio, fmt_usd, group_cost
from slides.style import LEFT


def slide_emr(deck: Deck, figures: Figures) -> None:
    figure = deck.page("EMR cluster", "infra/emr-cluster.yaml, docs/operations.md")
    emr = figures.emr
    left_bottom = table(
        figure,
        ["Node group", "Default (template)"],
        [
            ["primary (on-demand)", emr.get("PrimaryInstanceType", "?")],
            [
                "core (on-demand,\nholds the driver)",
                f"{emr.get('CoreOnDemandUnits', '?')} x {emr.get('CoreInstanceType', '?')}",
            ],
            [
                "task (spot)",
                f"{emr.get('TaskInstanceTypeA', '?')} / {emr.get('TaskInstanceTypeB', '?')} /\n"
                f"{emr.get('TaskInstanceTypeC', '?')}",
            ],
            [
                "managed scaling",
                f"{emr.get('ScalingMinimumUnits', '?')} to {emr.get('ScalingMaximumUnits', '?')} nodes",
            ],
            ["release", "emr-spark-8.0.0 (Spark 4.0)"],
        ],
        columns=[LEFT, 0.35],
        top=0.84,
        row_h=0.058,
        right=0.75,
    )
    bullets(
        figure,
        [
            "The driver stays on on-demand core nodes (YARN node label CORE): a spot reclaim never kills it.",
            "Each step brings the job's Python environment (a venv-pack archive in S3): no PyPI at boot; "
            "IMDSv2 required; at-rest (KMS) and in-transit (TLS) encryption.",
        ],
        top=left_bottom - 0.04,
        size=16,
    )


def slide_iam(deck: Deck, figures: Figures) -> None:
    """Every IAM role the templates declare (read from them at build time), and what it reaches."""
    figure = deck.page(
        f"IAM: {len(figures.roles)} roles, one per component", "template.yaml, infra/emr-cluster.yaml"
    )
    rows = [
        [
            role.name,
            role.assumed_by,
            ", ".join(role.services) + ("\n+ " + ", ".join(role.managed) if role.managed else ""),
            _wrapped(role.prefixes) or "-",
        ]
        for role in figures.roles
    ]
    bottom = table(
        figure,
        ["Role", "Assumed by", "AWS services (inline policies)", "S3 prefixes named"],
        rows,
        columns=[LEFT, 0.28, 0.42, 0.66],
        top=0.85,
        row_h=0.05,
        size=13,
    )
    bullets(
        figure,
        [
            "Read from the templates at build time: each inline policy names its actions and the lake "
            "prefixes it reaches; a role added to a template appears here at the next build."
        ],
        top=bottom - 0.03,
        size=15,
    )


def _wrapped(prefixes: tuple[str, ...], per_line: int = 4) -> str:
    return "\n".join(", ".join(prefixes[i : i + per_line]) for i in range(0, len(prefixes), per_line))


def slide_cost(deck: Deck, figures: Figures) -> None:
    scales = list(figures.costs)
    first = figures.costs[scales[0]]
    figure = deck.page(
        f"Monthly cost, three scales ({first['region']}, {first['prices_as_of']})",
        "fruits cost --images-per-day N --json (operations/pricing_eu.json)",
    )
    grouped = {scale: group_cost(estimate) for scale, estimate in figures.costs.items()}
    rows = [[name, *(f"{grouped[scale][name]:,.0f}" for scale in scales)] for name, _ in COST_GROUPS]
    rows.append(["total (USD / month)", *(fmt_usd(figures.costs[scale]["total_usd"]) for scale in scales)])
    bottom = table(
        figure,
        ["USD / month", *(f"{scale:,}\nimages/day" for scale in scales)],
        rows,
        columns=[LEFT, 0.42, 0.60, 0.78],
        top=0.84,
        aligns=["left", "right", "right", "right"],
        row_h=0.047,
        bold_last=True,
    )
    fleets = []
    for scale in scales:
        fleet = figures.costs[scale]["fleet"]
        compute = fleet["compute_usd"]
        fleets.append(
            f"{scale:,}/day: EMR {fleet['mode']}, up to {fleet['executors_peak']} executors "
            f"({compute['serverless']:,.0f} USD; on EC2 {compute['ec2']:,.0f})"
        )
    bullets(
        figure,
        [
            "Compute follows the load (priced hour by hour on a daily curve, the cheaper mode deployed); "
            "at scale the ingest's two S3 PUTs per image dominate.",
            *("- " + line for line in fleets),
        ],
        top=bottom - 0.035,
        size=15,
        gap=0.15,
    )


def slide_gdpr(deck: Deck, figures: Figures) -> None:
    figure = deck.page("GDPR controls", "docs/gdpr.md")
    bullets(
        figure,
        [
            "EU only: both templates refuse any region outside the EU (EuRegionsOnly rule), and so does "
            "every fruits deploy command before it calls AWS.",
            "Minimisation and pseudonymisation at the door: the Lambda keeps a keyed pseudonym, a ~20 km "
            "geohash and the UTC hour; device id, file name, IP and EXIF never go further.",
            "Encryption: one customer managed KMS key (rotation on) for buckets, queues, topic, log groups "
            "and EMR disks; TLS-only bucket policies; EMR in-transit TLS.",
            "Least privilege: one IAM role per component, scoped to lake prefixes; "
            "consumers read features/ only.",
            "Retention: a lifecycle rule on every lake prefix (days as parameters, tested); table rows "
            "age out with fruits lake maintain (365 days).",
            "Art. 15 / 17: fruits subject export | erase finds the person under every key version: objects, "
            "table rows and unreferenced files deleted, a tombstone drops uploads in flight, an audit "
            "record without personal data; fruits audit-pii checks the lake.",
        ],
        top=0.83,
    )


def slide_choices(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Technology choices")
    table(
        figure,
        ["Choice", "Why"],
        [
            ["Lambda + SQS for ingest", "per-image work, scales to zero, retries + DLQ for free"],
            [
                "Spark Structured Streaming on EMR",
                "the brief's PySpark; seconds of latency; exactly once\n"
                "through checkpoints; same code for backfills (--available-now)",
            ],
            ["MobileNetV2 features, broadcast", "2.8 MB int8 model, CPU-friendly; built once per worker"],
            [
                "int8 MobileNetV2 on LiteRT",
                f"bench: {fmt_ratio(figures.stream_ratio)} x the Keras stream's throughput, same CPUs",
            ],
            ["PCA (Spark ML + numpy eigh)", "compact rows; deterministic refits; residual as OOD score"],
            [
                "JSON manifests + Iceberg tables",
                "simple contracts both halves share (fruits_core, fruits_lake)",
            ],
            ["SAM + CloudFormation, EU rule", "reviewable infrastructure, region guard in the template"],
        ],
        columns=[LEFT, 0.40],
        top=0.84,
        row_h=0.075,
    )


def slide_limits(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Limits and next steps")
    bullets(
        figure,
        [
            "Figures measured on a shared 2-core VM: re-run fruits bench on the target EMR instance type "
            "and feed its images/s to fruits cost (--images-per-vcpu-second).",
            "At 100 M images/day the app's upload and the clean image are two S3 PUTs per image (32 k USD "
            "a month): packing clean images into grouped objects is the next lever.",
            "EMR Serverless prices for eu-west-3 are scaled from us-east-1 list prices: check them, and "
            "that the release offers Python 3.11, before relying on the small-scale total.",
            "The classifier was validated on 4 Fruits-360 classes: more classes need more labelled uploads "
            "and a drift watch (LowConfidencePredictions, LabelDisagreements).",
            "Feature quality: the probe on 100 bundled images is indicative only; validate on the full "
            "Fruits-360 set and track drift with pca_residual.",
            "pyiceberg rewrites the table metadata on every commit: snapshots are kept a day; a JVM "
            "Iceberg writer would lift that bound.",
        ],
        top=0.83,
    )
