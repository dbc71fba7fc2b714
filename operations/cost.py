"""Monthly AWS cost of the pipeline at a given number of images a day.

Pure functions over the price table shipped with the package (`pricing_eu.json`,
dated, one source URL per service) and a set of documented assumptions, so the
estimate is reproducible and every figure can be traced. Volumes follow the data
path of docs/design.md: upload -> S3 notification -> SQS -> Lambda -> lake -> Spark
stream on EMR -> Iceberg tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

PRICE_TABLE_NAME = "pricing_eu.json"
SECONDS_PER_DAY = 86_400
GIB = 1024**3
KIB = 1024
LIST_KEYS_PER_PAGE = 1000
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class Assumptions:
    """Every knob of the estimate; the defaults are documented in docs/operations.md ("fruits cost")."""

    # Images and records
    # One 12 MP phone photo, the one lambda_ms_per_image times: measured with the ingest's own
    # normalize_image on a synthetic photo-like 4000x3000 JPEG (`python -m benchmarks.clean_image_size`):
    # the upload weighs ~3,520 KiB (3.4 MiB); the clean JPEG, shrunk to CLEAN_IMAGE_MAX_SIDE_PX
    # (2048 px) on the long side, ~780 KiB.
    image_kib: float = 3520.0  # the upload (kept uploads_days)
    clean_image_kib: float = 780.0  # the clean image (kept retention_days)
    manifest_bytes: float = 700.0
    feature_row_bytes: float = 400.0  # k ~ 50 floats + ids and times, Parquet-compressed
    quarantine_rate: float = 0.02
    # Ingest Lambda (template.yaml: 1024 MB, arm64, SQS batch 10, batching window 5 s)
    lambda_memory_mb: float = 1024.0
    lambda_ms_per_image: float = 600.0  # decode + re-encode of a 12 MP photo on ~0.58 vCPU (1024 MB)
    sqs_batch_size: int = 10
    batching_window_seconds: float = 5.0
    sqs_idle_pollers: int = 5  # Lambda's SQS pollers keep long-polling when the queue is empty
    # Retention (steady state)
    retention_days: float = 30.0  # clean images, archived manifests, features
    uploads_days: float = 2.0  # 1-day expiry, applied by S3's daily lifecycle run
    noncurrent_days: float = 30.0  # template.yaml NoncurrentVersionRetentionDays
    quarantine_days: float = 30.0
    access_log_bytes_per_request: float = 350.0
    access_log_days: float = 365.0
    # Observability
    log_bytes_per_image: float = 600.0
    log_retention_days: float = 30.0
    custom_metrics: int = 22
    alarms: int = 14  # the templates' AWS::CloudWatch::Alarm resources (tests/infra/test_templates.py)
    dashboards: int = 2
    xray_reservoir_per_second: float = 1.0
    xray_sampling_rate: float = 0.05
    kms_requests_per_image: float = 0.002  # S3 Bucket Keys: S3 asks KMS for a data key rarely
    # Stream on EMR
    # The stream's own default (set from the measured commit cost per batch: docs/performance.md).
    trigger_seconds: float = field(default_factory=lambda: float(stream_default("trigger_seconds")))
    peak_factor: float = 3.0
    # LiteRT runtime: ~260-300 images/s on one core here (docs/performance.md), derated to 60 as the
    # Keras default (15 against 66 measured) was, for hyperthreads, decoding and Spark's per-row work.
    images_per_vcpu_second: float = 60.0
    driver_vcpus: int = 1  # the cluster-mode driver occupies a core node's vCPU
    stream_gets_per_image: float = 3.0  # manifest, clean image, cleanSource rename's HEAD
    stream_copies_per_image: float = 1.0  # cleanSource archive = COPY + DELETE
    # Per micro-batch: 2 Iceberg commits (data file, manifest, manifest list, metadata = 4 PUTs each; their
    # Glue UpdateTable calls stay in Glue's free million requests), checkpoint offsets and commit, status.
    puts_per_batch: float = 12.0
    # infra/emr-cluster.yaml defaults: PrimaryInstanceType, CoreInstanceType x CoreOnDemandUnits,
    # TaskInstanceTypeA, and ScalingMinimumUnits 3 = the 2 core nodes + 1 task node always on.
    primary_type: str = "m7i.xlarge"
    core_type: str = "m7i.2xlarge"
    core_count: int = 2
    task_type: str = "m7i.2xlarge"
    task_min_nodes: int = 1
    spot_price_factor: float = 0.40  # spot price as a fraction of on-demand (EMR's own fee is not discounted)
    scaling_overhead: float = 1.2  # managed scaling follows the load with some lag and rounding
    ebs_gib_per_node: float = 64.0
    nat_gateways: int = 1


@dataclass(frozen=True)
class LineItem:
    component: str
    quantity: float
    unit: str
    unit_price: float
    price_unit: str  # what `unit_price` buys, e.g. "1M requests"
    per: float = 1.0  # how many `unit`s that is (e.g. 1,000,000)

    @property
    def usd(self) -> float:
        return self.quantity / self.per * self.unit_price


@dataclass(frozen=True)
class Fleet:
    primary: str
    core: str
    task: str
    task_nodes_peak: int
    task_nodes_average: float
    vcpus_needed_peak: float
    lambda_peak_concurrency: float
    max_files_per_trigger: int
    scaling_maximum_units: int


@dataclass(frozen=True)
class Estimate:
    region: str
    region_name: str
    as_of: str
    images_per_day: float
    items: list[LineItem]
    fleet: Fleet
    assumptions: Assumptions
    notes: list[str] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return sum(item.usd for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "region_name": self.region_name,
            "prices_as_of": self.as_of,
            "images_per_day": self.images_per_day,
            "items": [{**asdict(item), "usd": round(item.usd, 2)} for item in self.items],
            "total_usd": round(self.total_usd, 2),
            "fleet": asdict(self.fleet),
            "assumptions": asdict(self.assumptions),
            "notes": self.notes,
        }


def load_price_table(path: Path | None = None) -> dict[str, Any]:
    if path is not None:
        return json.loads(path.read_text(encoding="utf-8"))
    return json.loads(resources.files("operations").joinpath(PRICE_TABLE_NAME).read_text(encoding="utf-8"))


class UnknownPriceError(ValueError):
    """The price table has no entry for a region or instance type."""


def region_prices(table: dict[str, Any], region: str) -> dict[str, Any]:
    if region not in table["regions"]:
        known = ", ".join(table["regions"])
        raise UnknownPriceError(f"no prices for region {region!r}; the table has: {known}")
    return table["regions"][region]


def _instance(prices: dict[str, Any], instance_type: str) -> dict[str, float]:
    types = prices["emr_instances"]["types"]
    if instance_type not in types:
        raise UnknownPriceError(
            f"no price for instance type {instance_type!r}; the table has: {', '.join(sorted(types))}"
        )
    return types[instance_type]


def estimate(
    images_per_day: float,
    region: str = "eu-west-3",
    table: dict[str, Any] | None = None,
    assumptions: Assumptions | None = None,
) -> Estimate:
    """The monthly cost at a steady `images_per_day` (with `peak_factor` bursts sizing the fleet)."""
    if images_per_day <= 0:
        raise ValueError(f"images per day must be > 0, got {images_per_day}")
    a = assumptions or Assumptions()
    table = table or load_price_table()
    prices = region_prices(table, region)
    hours = float(table["hours_per_month"])
    seconds = hours * 3600
    images = images_per_day * hours / 24
    accepted = images * (1 - a.quarantine_rate)
    average_rate = images_per_day / SECONDS_PER_DAY
    peak_rate = average_rate * a.peak_factor

    items: list[LineItem] = []
    invocations = _lambda_items(items, prices, a, images, average_rate)
    _sqs_items(items, prices, a, images, invocations, hours)
    _s3_items(items, prices, a, images, accepted, average_rate, seconds)
    _observability_items(items, prices, a, images, invocations, seconds)
    fleet = _emr_items(items, prices, a, average_rate, peak_rate, hours)
    notes = [
        f"{images:,.0f} images a month ({figure(average_rate)}/s on average, {figure(peak_rate)}/s at the "
        f"{a.peak_factor:g}x peak that sizes the fleet)",
        f"lake retention {a.retention_days:g} days: storage grows linearly with it",
    ]
    return Estimate(
        region=region,
        region_name=prices["name"],
        as_of=table["as_of"],
        images_per_day=images_per_day,
        items=items,
        fleet=fleet,
        assumptions=a,
        notes=notes,
    )


def _lambda_items(items, prices, a: Assumptions, images: float, average_rate: float) -> float:
    lam = prices["lambda"]
    # The batching window fills a batch up to its size; a quiet queue gives batches of one.
    images_per_invocation = min(float(a.sqs_batch_size), max(1.0, average_rate * a.batching_window_seconds))
    invocations = images / images_per_invocation
    gb_seconds = images * a.lambda_ms_per_image / 1000 * a.lambda_memory_mb / 1024
    items.append(
        LineItem("Lambda requests", invocations, "requests", lam["requests_per_million"], "1M requests", 1e6)
    )
    items.append(LineItem("Lambda compute (arm64)", gb_seconds, "GB-s", lam["arm64_gb_second"], "GB-s"))
    return invocations


def _sqs_items(items, prices, a: Assumptions, images: float, invocations: float, hours: float) -> None:
    idle_polls = a.sqs_idle_pollers * hours * 3600 / LONG_POLL_SECONDS
    # One SendMessage per S3 notification, one ReceiveMessage and one DeleteMessageBatch per batch.
    requests = images + 2 * invocations + idle_polls
    items.append(
        LineItem(
            "SQS requests",
            requests,
            "requests",
            prices["sqs"]["standard_requests_per_million"],
            "1M requests",
            1e6,
        )
    )


def _s3_items(
    items, prices, a: Assumptions, images: float, accepted: float, average_rate: float, seconds: float
) -> None:
    s3 = prices["s3"]
    put, get, gb_month = s3["put_copy_post_list_per_1000"], s3["get_per_1000"], s3["standard_gb_month"]
    quarantined = images - accepted
    # Ingest: the app's PUT, the Lambda's HEAD + GET, then clean + manifest (or a quarantine record).
    ingest_puts = images + 2 * accepted + quarantined
    ingest_gets = 2 * images
    triggers = seconds / a.trigger_seconds
    files_per_trigger = average_rate * a.trigger_seconds
    # Poisson arrivals: a trigger with no new manifest lists the source but writes nothing.
    batches = triggers * (1 - math.exp(-files_per_trigger))
    # With cleanSource the listing holds only new manifests: one LIST page per 1,000, plus the dt= prefixes.
    lists = triggers * (2 + math.ceil(files_per_trigger / LIST_KEYS_PER_PAGE))
    stream_puts = accepted * a.stream_copies_per_image + batches * a.puts_per_batch
    stream_gets = accepted * a.stream_gets_per_image
    for component, quantity, price in (
        ("S3 PUT/COPY (ingest)", ingest_puts, put),
        ("S3 GET/HEAD (ingest)", ingest_gets, get),
        ("S3 PUT/COPY (stream, cleanSource)", stream_puts, put),
        ("S3 GET/HEAD (stream)", stream_gets, get),
        (f"S3 LIST (stream source, {a.trigger_seconds:g} s trigger)", lists, put),
    ):
        items.append(LineItem(component, quantity, "requests", price, "1K requests", 1000))

    per_day = images / (seconds / SECONDS_PER_DAY)
    accepted_per_day = per_day * (1 - a.quarantine_rate)
    uploads = per_day * a.image_kib * KIB * a.uploads_days / GIB
    clean = accepted_per_day * a.clean_image_kib * KIB * a.retention_days / GIB
    records = (
        accepted_per_day * (a.manifest_bytes + a.feature_row_bytes) * a.retention_days
        + accepted_per_day * a.manifest_bytes * a.noncurrent_days  # archived manifests' old versions
        + (per_day - accepted_per_day) * a.manifest_bytes * a.quarantine_days
    ) / GIB
    requests = ingest_puts + ingest_gets + stream_puts + stream_gets + lists
    requests_per_day = requests / (seconds / SECONDS_PER_DAY)
    access_logs = requests_per_day * a.access_log_bytes_per_request * a.access_log_days / GIB
    for component, quantity in (
        (f"S3 storage: uploads ({a.uploads_days:g} days)", uploads),
        (f"S3 storage: clean images ({a.retention_days:g} days)", clean),
        ("S3 storage: manifests, features, quarantine", records),
        (f"S3 storage: access logs ({a.access_log_days:g} days)", access_logs),
    ):
        items.append(LineItem(component, quantity, "GB-month", gb_month, "GB-month"))
    kms = prices["kms"]
    items.append(LineItem("KMS key", 1, "keys", kms["key_month"], "key-month"))
    items.append(
        LineItem(
            "KMS requests (S3 Bucket Keys)",
            images * a.kms_requests_per_image,
            "requests",
            kms["requests_per_10000"],
            "10K requests",
            10_000,
        )
    )


def _observability_items(
    items, prices, a: Assumptions, images: float, invocations: float, seconds: float
) -> None:
    cw = prices["cloudwatch"]
    ingested = images * a.log_bytes_per_image / GIB
    stored = ingested * a.log_retention_days / (seconds / SECONDS_PER_DAY)
    items.append(LineItem("CloudWatch Logs ingestion", ingested, "GB", cw["logs_ingested_gb"], "GB"))
    items.append(
        LineItem("CloudWatch Logs storage", stored, "GB-month", cw["logs_stored_gb_month"], "GB-month")
    )
    items.append(
        LineItem(
            "CloudWatch custom metrics",
            a.custom_metrics,
            "metrics",
            cw["custom_metric_month"],
            "metric-month",
        )
    )
    items.append(LineItem("CloudWatch alarms", a.alarms, "alarms", cw["alarm_month"], "alarm-month"))
    items.append(
        LineItem(
            "CloudWatch dashboards", a.dashboards, "dashboards", cw["dashboard_month"], "dashboard-month"
        )
    )
    reservoir = a.xray_reservoir_per_second * seconds
    traces = min(invocations, reservoir) + a.xray_sampling_rate * max(0.0, invocations - reservoir)
    items.append(
        LineItem(
            "X-Ray traces (Lambda, sampled)",
            traces,
            "traces",
            prices["xray"]["traces_recorded_per_million"],
            "1M traces",
            1e6,
        )
    )


def _emr_items(items, prices, a: Assumptions, average_rate: float, peak_rate: float, hours: float) -> Fleet:
    primary, core, task = (_instance(prices, name) for name in (a.primary_type, a.core_type, a.task_type))
    core_vcpus = max(0, a.core_count * core["vcpu"] - a.driver_vcpus)
    vcpus_peak = peak_rate / a.images_per_vcpu_second
    vcpus_average = average_rate / a.images_per_vcpu_second
    task_peak = max(a.task_min_nodes, math.ceil(max(0.0, vcpus_peak - core_vcpus) / task["vcpu"]))
    # Managed scaling adds spot task nodes when the load needs them and removes them after.
    task_needed = max(0.0, vcpus_average - core_vcpus) / task["vcpu"] * a.scaling_overhead
    task_average = min(float(task_peak), max(float(a.task_min_nodes), task_needed))
    spot_hour = task["ec2_on_demand_hour"] * a.spot_price_factor + task["emr_hour"]
    items.append(
        LineItem(
            f"EMR primary: 1 x {a.primary_type} on-demand",
            hours,
            "instance-hours",
            _on_demand_hour(primary),
            "instance-hour",
        )
    )
    items.append(
        LineItem(
            f"EMR core: {a.core_count} x {a.core_type} on-demand",
            a.core_count * hours,
            "instance-hours",
            _on_demand_hour(core),
            "instance-hour",
        )
    )
    items.append(
        LineItem(
            f"EMR task: {a.task_type} spot ({a.task_min_nodes}-{task_peak} nodes)",
            task_average * hours,
            "instance-hours",
            spot_hour,
            "instance-hour",
        )
    )
    nodes = 1 + a.core_count + task_average
    items.append(
        LineItem(
            "EBS gp3 on EMR nodes",
            nodes * a.ebs_gib_per_node,
            "GB-month",
            prices["ebs"]["gp3_gb_month"],
            "GB-month",
        )
    )
    items.append(
        LineItem(
            "NAT gateway (private subnet)",
            a.nat_gateways * hours,
            "hours",
            prices["vpc"]["nat_gateway_hour"],
            "hour",
        )
    )
    return Fleet(
        primary=f"1 x {a.primary_type} on-demand",
        core=f"{a.core_count} x {a.core_type} on-demand",
        task=f"{a.task_min_nodes}-{task_peak} x {a.task_type} spot (managed scaling; "
        f"{task_average:.1f} on average)",
        task_nodes_peak=task_peak,
        task_nodes_average=round(task_average, 2),
        vcpus_needed_peak=_significant(vcpus_peak),
        lambda_peak_concurrency=_significant(peak_rate * a.lambda_ms_per_image / 1000),
        max_files_per_trigger=max(1, math.ceil(peak_rate * a.trigger_seconds)),
        scaling_maximum_units=a.core_count + task_peak,
    )


def _on_demand_hour(spec: dict[str, float]) -> float:
    """EC2 on-demand price plus EMR's fee, per instance-hour."""
    return spec["ec2_on_demand_hour"] + spec["emr_hour"]


def _significant(value: float) -> float:
    """Two decimals from 1 up, two significant digits below (0.0058, not 0): tiny scales stay readable."""
    return round(value, 2) if value >= 1 else float(f"{value:.2g}")


def figure(value: float, floor: float = 0.001) -> str:
    """A rate or a count for people: 1,234.5 / 0.58 / 0.0058 / "< 0.001" (never a bare 0 for a non-zero)."""
    if value == 0:
        return "0"
    if value < floor:
        return f"< {floor:g}"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _quantity(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _price(value: float) -> str:
    return "$" + f"{value:.8f}".rstrip("0").rstrip(".")


def stream_default(name: str):
    """A `fruits stream` default (StreamConfig), so the estimate follows the stream's real settings."""
    from streaming_job.config import StreamConfig

    return next(item.default for item in fields(StreamConfig) if item.name == name)


def _files_note(files: int) -> str:
    default = stream_default("max_files_per_trigger")
    return f" (the default {default:,} is enough)" if files <= default else ""


def _concurrency(value: float) -> str:
    return "< 1" if value < 1 else "~" + f"{value:,.1f}".removesuffix(".0")


def format_table(result: Estimate) -> str:
    """The estimate as a plain-text table (component, monthly units, unit price, USD/month) + the fleet."""
    rows = [
        (
            item.component,
            f"{_quantity(item.quantity)} {item.unit}",
            f"{_price(item.unit_price)} / {item.price_unit}",
            f"{item.usd:,.2f}",
        )
        for item in result.items
    ]
    header = ("component", "monthly units", "unit price", "USD/month")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    rule = "  ".join("-" * width for width in widths)

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            [
                row[0].ljust(widths[0]),
                row[1].rjust(widths[1]),
                row[2].ljust(widths[2]),
                row[3].rjust(widths[3]),
            ]
        ).rstrip()

    fleet = result.fleet
    out = [
        f"Monthly cost estimate: {result.images_per_day:,.0f} images/day in {result.region} "
        f"({result.region_name}), prices as of {result.as_of}",
        "",
        line(header),
        rule,
        *(line(row) for row in rows),
        rule,
        line(("total", "", "", f"{result.total_usd:,.2f}")),
        "",
        f"fleet: primary {fleet.primary}; core {fleet.core}; task {fleet.task}",
        f"       {figure(fleet.vcpus_needed_peak)} vCPUs at peak: EMR stack ScalingMaximumUnits >= "
        f"{fleet.scaling_maximum_units}; stream --max-files-per-trigger >= {fleet.max_files_per_trigger:,}"
        f"{_files_note(fleet.max_files_per_trigger)}; ingest Lambda peak concurrency "
        f"{_concurrency(fleet.lambda_peak_concurrency)} (ReservedConcurrency)",
        *(f"note: {note}" for note in result.notes),
    ]
    return "\n".join(out)
