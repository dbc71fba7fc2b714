"""Monthly AWS cost of the pipeline at a given number of images a day.

Pure functions over the price table shipped with the package (`pricing_eu.json`: the six EU regions
`fruits deploy` accepts, dated, one source URL and a basis per service: list, secondary or derived by a
named rule) and a set of documented assumptions, so the
estimate is reproducible and every figure can be traced. Volumes follow the data
path of docs/design.md: upload -> S3 notification -> SQS -> Lambda -> lake -> Spark
stream on EMR -> Iceberg tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from fruits_core.contracts import CLEAN_IMAGE_MAX_SIDE_PX

PRICE_TABLE_NAME = "pricing_eu.json"
# The per-image figures the repository measures (python -m benchmarks.unit_costs --write).
UNIT_COSTS_PATH = Path(__file__).with_name("unit_costs.json")
SECONDS_PER_DAY = 86_400
GIB = 1024**3
KIB = 1024
LIST_KEYS_PER_PAGE = 1000
LONG_POLL_SECONDS = 20


def measured(name: str) -> Any:
    """A figure of operations/unit_costs.json (measured by `python -m benchmarks.unit_costs --write`)."""
    return json.loads(UNIT_COSTS_PATH.read_text(encoding="utf-8"))[name]


def _measured_requests(*operations: str) -> float:
    per_image = measured("ingest_s3_requests_per_image")
    return float(sum(per_image.get(operation, 0.0) for operation in operations))


# The day's shape: the upload rate per hour (UTC+1) as a multiple of the daily average (mean 1.0).
# Phone photos of fruit: quiet nights, a lunch bump, an evening peak at 1.9x the average. Compute that
# follows the load (EMR Serverless executors, managed-scaling task nodes) is billed hour by hour on it.
DAILY_LOAD_CURVE: tuple[float, ...] = (
    *(0.25,) * 6,  # 00-06
    *(0.6,) * 3,  # 06-09
    *(1.0,) * 3,  # 09-12
    *(1.5,) * 2,  # 12-14
    *(1.1,) * 3,  # 14-17
    *(1.9,) * 4,  # 17-21
    *(1.3,) * 2,  # 21-23
    1.2,  # 23-24
)
COMPUTE_MODES = ("auto", "serverless", "ec2")


@dataclass(frozen=True)
class Assumptions:
    """Every knob of the estimate; the defaults are documented in docs/operations.md ("fruits cost").

    The per-image figures come from operations/unit_costs.json: measured by the repository's own
    code (benchmarks/unit_costs.py), checked against a fresh measurement by tests/deploy/test_cost.py.
    """

    # Images and records (measured: a synthetic 12 MP photo through the ingest's normalize_image)
    image_kib: float = field(default_factory=lambda: float(measured("image_kib")))
    clean_image_kib: float = field(default_factory=lambda: float(measured("clean_image_kib")))
    manifest_bytes: float = field(default_factory=lambda: float(measured("manifest_bytes")))
    feature_row_bytes: float = 400.0  # k ~ 50 floats + ids and times, Parquet-compressed
    quarantine_rate: float = 0.02
    # Ingest Lambda (template.yaml: 1024 MB, arm64, SQS batch 100 (measured with), batching window 10 s)
    lambda_memory_mb: float = 1024.0
    # CPU ms of one 12 MP photo's decode (DCT-scaled) + re-encode, on one core of the measuring machine
    lambda_cpu_ms_per_image: float = field(default_factory=lambda: float(measured("lambda_cpu_ms_per_image")))
    lambda_full_vcpu_mb: float = 1769.0  # Lambda gives a function one full vCPU at 1,769 MB (AWS docs)
    s3_request_ms: float = 20.0  # the function waits this long per S3 request (latency, not measured)
    s3_read_mib_per_second: float = 90.0  # the upload's download rate into the function
    sqs_batch_size: int = field(default_factory=lambda: int(measured("ingest_batch_size")))
    batching_window_seconds: float = 10.0
    sqs_idle_pollers: int = 5  # Lambda's SQS pollers keep long-polling when the queue is empty
    # S3 requests per accepted upload, measured on the real handler under moto (the app's own PUT apart)
    ingest_puts_per_image: float = field(default_factory=lambda: _measured_requests("PutObject"))
    ingest_gets_per_image: float = field(
        default_factory=lambda: _measured_requests("GetObject", "HeadObject")
    )
    stream_image_gets_per_image: float = field(
        default_factory=lambda: float(measured("stream_s3_gets_per_image"))
    )
    # Retention (steady state)
    retention_days: float = 30.0  # clean images, manifests, features
    # The raw upload is deleted once processed or quarantined: it waits for its batch (queue + window +
    # processing), minutes; the uploads bucket's 1-day lifecycle rule stays as the net for the failed ones.
    upload_minutes: float = 2.0
    failed_upload_rate: float = 0.001  # uploads whose message ends in the DLQ: kept 2 days (lifecycle)
    uploads_days: float = 2.0  # 1-day expiry, applied by S3's daily lifecycle run
    noncurrent_days: float = 30.0  # template.yaml NoncurrentVersionRetentionDays (archived manifests)
    quarantine_days: float = 30.0
    access_log_bytes_per_request: float = 350.0
    access_log_days: float = 365.0
    # Observability
    log_bytes_per_image: float = 600.0
    log_retention_days: float = 30.0
    custom_metrics: int = 22
    alarms: int = 15  # the templates' AWS::CloudWatch::Alarm resources (tests/infra/test_templates.py)
    dashboards: int = 2
    xray_reservoir_per_second: float = 1.0
    xray_sampling_rate: float = 0.05
    kms_requests_per_image: float = 0.002  # S3 Bucket Keys: S3 asks KMS for a data key rarely
    # Upload API: one presign per upload, each one conditional UpdateItem on the quota table (on-demand,
    # an item under 1 KB = 1 write request unit). WAF guards the user pool: one web ACL with one rule,
    # inspecting sign-ins and token refreshes (a token lasts an hour: ~1 per 20 uploads, an assumption).
    quota_writes_per_image: float = 1.0
    waf_requests_per_image: float = 0.05
    waf_rules: int = 1
    # Stream
    # The stream's own default (set from the measured commit cost per batch: docs/performance.md).
    trigger_seconds: float = field(default_factory=lambda: float(stream_default("trigger_seconds")))
    peak_factor: float = 3.0  # burst over the average that sizes the maxima (fleet, Lambda, files/trigger)
    # LiteRT runtime: ~260-300 images/s on one core here (docs/performance.md), derated to 60 as the
    # Keras default (15 against 66 measured) was, for hyperthreads, decoding and Spark's per-row work.
    images_per_vcpu_second: float = 60.0
    # cleanSource archive: per manifest object, Spark's S3A rename = HEAD + COPY + DELETE (DELETE is free)
    stream_copies_per_file: float = 1.0
    stream_heads_per_file: float = 1.0
    # Per micro-batch: 2 Iceberg commits (data file, manifest, manifest list, metadata = 4 PUTs each; their
    # Glue UpdateTable calls stay in Glue's free million requests), checkpoint offsets and commit, status.
    puts_per_batch: float = 12.0
    scaling_overhead: float = 1.2  # scaling follows the load with some lag and rounding
    # Compute: "auto" prices both and keeps the cheaper; `fruits deploy` offers both (docs/operations.md).
    compute_mode: str = "auto"
    # EMR Serverless (release 7.1+, streaming job run): 1-vCPU workers, the driver always up, executors
    # added by dynamic allocation for the hour's load (at least one).
    serverless_driver_vcpu: float = 1.0
    serverless_driver_gb: float = 2.0
    serverless_executor_vcpu: float = 1.0
    serverless_executor_gb: float = 3.0
    serverless_min_executors: int = 1
    # EMR on EC2 (infra/emr-cluster.yaml defaults: PrimaryInstanceType, CoreInstanceType x CoreOnDemandUnits,
    # TaskInstanceTypeA, and ScalingMinimumUnits 3 = the 2 core nodes + 1 task node always on).
    driver_vcpus: int = 1  # the cluster-mode driver occupies a core node's vCPU
    primary_type: str = "m7i.xlarge"
    core_type: str = "m7i.2xlarge"
    core_count: int = 2
    task_type: str = "m7i.2xlarge"
    task_min_nodes: int = 1
    spot_price_factor: float = 0.40  # spot price as a fraction of on-demand (EMR's own fee is not discounted)
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
    mode: str  # the compute priced: "serverless" (EMR Serverless) or "ec2" (EMR on EC2)
    description: str
    vcpus_needed_peak: float
    lambda_peak_concurrency: float
    max_files_per_trigger: int
    images_per_manifest_file: float
    # EMR on EC2: spot task nodes (peak sizes ScalingMaximumUnits; average over the daily curve)
    task_nodes_peak: int
    task_nodes_average: float
    scaling_maximum_units: int
    # EMR Serverless: executors (peak sizes the application's maximum capacity)
    executors_peak: int
    executors_average: float
    # The monthly compute bill of each mode (auto keeps the cheaper)
    compute_usd: dict[str, float]


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
            "top_items": [
                {"component": item.component, "usd": round(item.usd, 2)}
                for item in sorted(self.items, key=lambda item: item.usd, reverse=True)[:3]
            ],
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


def derived_services(prices: dict[str, Any]) -> list[str]:
    """The region's service blocks whose prices a stated rule derived instead of an AWS page."""
    return [
        name for name, block in prices.items() if isinstance(block, dict) and block.get("basis") == "derived"
    ]


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
    """The monthly cost at `images_per_day`, spread over the day as DAILY_LOAD_CURVE says."""
    if images_per_day <= 0:
        raise ValueError(f"images per day must be > 0, got {images_per_day}")
    a = assumptions or Assumptions()
    if a.compute_mode not in COMPUTE_MODES:
        raise ValueError(f"compute mode must be one of {', '.join(COMPUTE_MODES)}, got {a.compute_mode!r}")
    table = table or load_price_table()
    prices = region_prices(table, region)
    hours = float(table["hours_per_month"])
    seconds = hours * 3600
    images = images_per_day * hours / 24
    accepted = images * (1 - a.quarantine_rate)
    average_rate = images_per_day / SECONDS_PER_DAY
    peak_rate = average_rate * a.peak_factor
    # The batching window fills a batch up to its size; a quiet queue gives batches of one.
    per_batch = min(float(a.sqs_batch_size), max(1.0, average_rate * a.batching_window_seconds))

    items: list[LineItem] = []
    invocations = _lambda_items(items, prices, a, images, per_batch)
    _sqs_items(items, prices, a, images, invocations, hours)
    _s3_items(items, prices, a, images, accepted, average_rate, seconds, per_batch)
    _observability_items(items, prices, a, images, invocations, seconds)
    _upload_api_items(items, prices, a, images)
    fleet = _compute_items(items, prices, a, average_rate, peak_rate, hours, per_batch)
    notes = [
        f"{images:,.0f} images a month ({figure(average_rate)}/s on average, {figure(peak_rate)}/s at the "
        f"{a.peak_factor:g}x peak that sizes the maxima; compute billed hour by hour on the daily curve, "
        f"{max(DAILY_LOAD_CURVE):g}x the average at the busiest hour)",
        f"lake retention {a.retention_days:g} days: storage grows linearly with it; clean images "
        f"{a.clean_image_kib:g} KiB (long side {CLEAN_IMAGE_MAX_SIDE_PX} px), manifests "
        f"{figure(per_batch)} to a file",
        "compute: "
        + ", ".join(f"{mode} {usd:,.0f} USD" for mode, usd in fleet.compute_usd.items())
        + f" a month; priced: {fleet.mode}",
    ]
    derived = derived_services(prices)
    if derived:
        notes.append(
            f"prices not read from AWS for {prices['name']}, derived by the rules of {PRICE_TABLE_NAME}: "
            + ", ".join(derived)
        )
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


def top_items(result: Estimate, count: int = 3) -> list[LineItem]:
    """The `count` largest line items, largest first."""
    return sorted(result.items, key=lambda item: item.usd, reverse=True)[:count]


# The line items by what they pay for: the one grouping of docs/operations.md's "Three scales" table
# and of the slides' cost page (a component belongs to the first group whose prefix it starts with).
COST_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Lambda (requests + arm64 compute)", ("Lambda",)),
    ("SQS", ("SQS",)),
    ("S3 requests", ("S3 PUT", "S3 GET", "S3 LIST")),
    ("S3 storage (30-day lake)", ("S3 storage",)),
    ("KMS", ("KMS",)),
    ("CloudWatch + X-Ray", ("CloudWatch", "X-Ray")),
    ("upload quota (DynamoDB) + WAF", ("DynamoDB", "WAF")),
    ("EMR (Serverless, or nodes + EBS + NAT)", ("EMR", "EBS", "NAT")),
)


def grouped_usd(items: Iterable[tuple[str, float]]) -> dict[str, float]:
    """USD per group of COST_GROUPS, in its order, from (component, usd) pairs; a new component that
    fits no group is an error, so no cost silently drops out of the documented table."""
    grouped = {name: 0.0 for name, _ in COST_GROUPS}
    for component, usd in items:
        group = next((name for name, prefixes in COST_GROUPS if component.startswith(prefixes)), None)
        if group is None:
            raise ValueError(f"cost component {component!r} fits no group of COST_GROUPS")
        grouped[group] += usd
    return grouped


def lambda_seconds_per_image(a: Assumptions) -> float:
    """Billed seconds per upload: the CPU work at the function's vCPU share, then its waits on S3."""
    cpu = a.lambda_cpu_ms_per_image * max(1.0, a.lambda_full_vcpu_mb / a.lambda_memory_mb)
    requests = a.ingest_puts_per_image + a.ingest_gets_per_image + measured_deletes()
    download = a.image_kib / 1024 / a.s3_read_mib_per_second * 1000
    return (cpu + requests * a.s3_request_ms + download) / 1000


def measured_deletes() -> float:
    return _measured_requests("DeleteObject")


def _lambda_items(items, prices, a: Assumptions, images: float, per_batch: float) -> float:
    lam = prices["lambda"]
    invocations = images / per_batch
    gb_seconds = images * lambda_seconds_per_image(a) * a.lambda_memory_mb / 1024
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
    items,
    prices,
    a: Assumptions,
    images: float,
    accepted: float,
    average_rate: float,
    seconds: float,
    per_batch: float,
) -> None:
    s3 = prices["s3"]
    put, get, gb_month = s3["put_copy_post_list_per_1000"], s3["get_per_1000"], s3["standard_gb_month"]
    quarantined = images - accepted
    # The measured PUTs hold one manifest object per full batch: the clean image is the rest.
    clean_puts = a.ingest_puts_per_image - 1 / a.sqs_batch_size
    manifest_files = accepted / per_batch
    # Ingest: the app's PUT, the Lambda's reads, then clean image + its share of the batch's manifest object
    # (or a quarantine record). The raw upload's DELETE is free.
    ingest_puts = images + accepted * clean_puts + manifest_files + quarantined
    ingest_gets = images * a.ingest_gets_per_image
    triggers = seconds / a.trigger_seconds
    files_per_trigger = average_rate * a.trigger_seconds / per_batch
    # Poisson arrivals: a trigger with no new manifest lists the source but writes nothing.
    batches = triggers * (1 - math.exp(-files_per_trigger))
    # With cleanSource the listing holds only new manifests: one LIST page per 1,000, plus the dt= prefixes.
    lists = triggers * (2 + math.ceil(files_per_trigger / LIST_KEYS_PER_PAGE))
    stream_puts = manifest_files * a.stream_copies_per_file + batches * a.puts_per_batch
    stream_gets = manifest_files * (1 + a.stream_heads_per_file) + accepted * a.stream_image_gets_per_image
    for component, quantity, price in (
        ("S3 PUT/COPY (ingest: app upload, clean image, batch manifest)", ingest_puts, put),
        ("S3 GET/HEAD (ingest)", ingest_gets, get),
        ("S3 PUT/COPY (stream: commits, cleanSource archive)", stream_puts, put),
        ("S3 GET/HEAD (stream)", stream_gets, get),
        (f"S3 LIST (stream source, {a.trigger_seconds:g} s trigger)", lists, put),
    ):
        items.append(LineItem(component, quantity, "requests", price, "1K requests", 1000))

    days = seconds / SECONDS_PER_DAY
    per_day = images / days
    accepted_per_day = accepted / days
    kept_days = a.upload_minutes / 1440 * (1 - a.failed_upload_rate) + a.uploads_days * a.failed_upload_rate
    uploads = per_day * a.image_kib * KIB * kept_days / GIB
    clean = accepted_per_day * a.clean_image_kib * KIB * a.retention_days / GIB
    records = (
        accepted_per_day * (a.manifest_bytes + a.feature_row_bytes) * a.retention_days
        + accepted_per_day * a.manifest_bytes * a.noncurrent_days  # archived manifests' old versions
        + (per_day - accepted_per_day) * a.manifest_bytes * a.quarantine_days
    ) / GIB
    deletes = images * measured_deletes()
    requests = ingest_puts + ingest_gets + deletes + stream_puts + stream_gets + lists
    access_logs = requests / days * a.access_log_bytes_per_request * a.access_log_days / GIB
    for component, quantity in (
        (f"S3 storage: uploads (deleted once processed; {a.uploads_days:g} days if failed)", uploads),
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


def _upload_api_items(items, prices, a: Assumptions, images: float) -> None:
    """The abuse controls' per-image share: the quota's DynamoDB write per presign, the user pool's WAF."""
    dynamodb, waf = prices["dynamodb"], prices["waf"]
    items.append(
        LineItem(
            "DynamoDB writes (upload quota, on-demand)",
            images * a.quota_writes_per_image,
            "write request units",
            dynamodb["on_demand_write_request_units_per_million"],
            "1M WRU",
            1e6,
        )
    )
    items.append(
        LineItem(
            "WAF web ACL + rules (user pool)",
            1,
            "web ACLs",
            waf["web_acl_month"] + a.waf_rules * waf["rule_month"],
            "ACL-month",
        )
    )
    items.append(
        LineItem(
            "WAF requests (sign-ins, token refreshes)",
            images * a.waf_requests_per_image,
            "requests",
            waf["requests_per_million"],
            "1M requests",
            1e6,
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


def hourly_vcpus(a: Assumptions, average_rate: float) -> list[float]:
    """The vCPUs the stream needs in each hour of the day (with the scaling margin)."""
    return [
        average_rate * factor / a.images_per_vcpu_second * a.scaling_overhead for factor in DAILY_LOAD_CURVE
    ]


def _compute_items(
    items, prices, a: Assumptions, average_rate: float, peak_rate: float, hours: float, per_batch: float
) -> Fleet:
    needs = hourly_vcpus(a, average_rate)
    days = hours / 24
    vcpus_peak = peak_rate / a.images_per_vcpu_second
    serverless, executors = _serverless_items(prices, a, needs, days)
    ec2, tasks = _ec2_items(prices, a, needs, days, hours)
    executors_peak = max(a.serverless_min_executors, math.ceil(vcpus_peak / a.serverless_executor_vcpu))
    task_peak = _task_nodes(prices, a, vcpus_peak)
    compute_usd = {
        "serverless": round(sum(item.usd for item in serverless), 2),
        "ec2": round(sum(item.usd for item in ec2), 2),
    }
    mode = a.compute_mode if a.compute_mode != "auto" else min(compute_usd, key=compute_usd.__getitem__)
    items.extend(serverless if mode == "serverless" else ec2)
    if mode == "serverless":
        description = (
            f"EMR Serverless streaming job: driver {a.serverless_driver_vcpu:g} vCPU / "
            f"{a.serverless_driver_gb:g} GB, {a.serverless_min_executors}-{executors_peak} executors of "
            f"{a.serverless_executor_vcpu:g} vCPU / {a.serverless_executor_gb:g} GB "
            f"({executors:.1f} on average)"
        )
    else:
        description = (
            f"EMR on EC2: primary 1 x {a.primary_type} on-demand; core {a.core_count} x {a.core_type} "
            f"on-demand; task {a.task_min_nodes}-{task_peak} x {a.task_type} spot (managed scaling; "
            f"{tasks:.1f} on average)"
        )
    return Fleet(
        mode=mode,
        description=description,
        vcpus_needed_peak=_significant(vcpus_peak),
        lambda_peak_concurrency=_significant(peak_rate * lambda_seconds_per_image(a)),
        max_files_per_trigger=max(1, math.ceil(peak_rate * a.trigger_seconds / per_batch)),
        images_per_manifest_file=_significant(per_batch),
        task_nodes_peak=task_peak,
        task_nodes_average=round(tasks, 2),
        scaling_maximum_units=a.core_count + task_peak,
        executors_peak=executors_peak,
        executors_average=round(executors, 2),
        compute_usd=compute_usd,
    )


def _serverless_items(
    prices, a: Assumptions, needs: list[float], days: float
) -> tuple[list[LineItem], float]:
    """Driver always up; executors per hour for that hour's load (billed per vCPU-hour and GB-hour)."""
    price = _serverless_prices(prices)
    executors = [
        max(a.serverless_min_executors, math.ceil(need / a.serverless_executor_vcpu)) for need in needs
    ]
    worker_hours = sum(executors) * days
    vcpu_hours = a.serverless_driver_vcpu * 24 * days + worker_hours * a.serverless_executor_vcpu
    gb_hours = a.serverless_driver_gb * 24 * days + worker_hours * a.serverless_executor_gb
    items = [
        LineItem(
            "EMR Serverless vCPU (driver + executors)",
            vcpu_hours,
            "vCPU-hours",
            price["vcpu_hour"],
            "vCPU-hour",
        ),
        LineItem(
            "EMR Serverless memory (driver + executors)", gb_hours, "GB-hours", price["gb_hour"], "GB-hour"
        ),
    ]
    return items, sum(executors) / len(executors)


def _serverless_prices(prices: dict[str, Any]) -> dict[str, float]:
    if "emr_serverless" not in prices:
        raise UnknownPriceError(f"no EMR Serverless prices for {prices['name']}")
    return prices["emr_serverless"]


def _task_nodes(prices, a: Assumptions, vcpus: float) -> int:
    core, task = _instance(prices, a.core_type), _instance(prices, a.task_type)
    core_vcpus = max(0, a.core_count * core["vcpu"] - a.driver_vcpus)
    return max(a.task_min_nodes, math.ceil(max(0.0, vcpus - core_vcpus) / task["vcpu"]))


def _ec2_items(
    prices, a: Assumptions, needs: list[float], days: float, hours: float
) -> tuple[list[LineItem], float]:
    """Primary and core nodes always on; spot task nodes for the hours managed scaling keeps them."""
    primary, core, task = (_instance(prices, name) for name in (a.primary_type, a.core_type, a.task_type))
    tasks = [_task_nodes(prices, a, need) for need in needs]
    task_average = sum(tasks) / len(tasks)
    spot_hour = task["ec2_on_demand_hour"] * a.spot_price_factor + task["emr_hour"]
    nodes = 1 + a.core_count + task_average
    items = [
        LineItem(
            f"EMR primary: 1 x {a.primary_type} on-demand",
            hours,
            "instance-hours",
            _on_demand_hour(primary),
            "instance-hour",
        ),
        LineItem(
            f"EMR core: {a.core_count} x {a.core_type} on-demand",
            a.core_count * hours,
            "instance-hours",
            _on_demand_hour(core),
            "instance-hour",
        ),
        LineItem(
            f"EMR task: {a.task_type} spot ({a.task_min_nodes}-{max(tasks)} nodes over the day)",
            sum(tasks) * days,
            "instance-hours",
            spot_hour,
            "instance-hour",
        ),
        LineItem(
            "EBS gp3 on EMR nodes",
            nodes * a.ebs_gib_per_node,
            "GB-month",
            prices["ebs"]["gp3_gb_month"],
            "GB-month",
        ),
        LineItem(
            "NAT gateway (private subnet)",
            a.nat_gateways * hours,
            "hours",
            prices["vpc"]["nat_gateway_hour"],
            "hour",
        ),
    ]
    return items, task_average


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


def _maximum(fleet: Fleet) -> str:
    if fleet.mode == "serverless":
        return f"EMR Serverless maximum capacity >= {fleet.executors_peak + 1} workers"
    return f"EMR stack ScalingMaximumUnits >= {fleet.scaling_maximum_units}"


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
        f"fleet: {fleet.description}",
        f"       {figure(fleet.vcpus_needed_peak)} vCPUs at peak: {_maximum(fleet)}; stream "
        f"--max-files-per-trigger >= {fleet.max_files_per_trigger:,}"
        f"{_files_note(fleet.max_files_per_trigger)}; "
        f"ingest Lambda peak concurrency {_concurrency(fleet.lambda_peak_concurrency)} (ReservedConcurrency)",
        "top three: " + "; ".join(f"{item.component} {item.usd:,.0f} USD" for item in top_items(result)),
        *(f"note: {note}" for note in result.notes),
    ]
    return "\n".join(out)
