"""`fruits cost`: the monthly estimate from the repository's dated price table."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from fruits_cli import cost as cost_command
from fruits_core.errors import ConfigError
from operations.cost import (
    COST_GROUPS,
    DAILY_LOAD_CURVE,
    UNIT_COSTS_PATH,
    Assumptions,
    UnknownPriceError,
    estimate,
    format_table,
    grouped_usd,
    lambda_seconds_per_image,
    load_price_table,
    top_items,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVICES = ("lambda", "sqs", "s3", "kms", "cloudwatch", "xray", "ebs", "vpc")


def item(result, prefix: str):
    [found] = [line for line in result.items if line.component.startswith(prefix)]
    return found


def fruits_cost(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fruits cost")
    cost_command.add_arguments(parser)
    return cost_command.run(parser.parse_args(list(argv)))


def test_price_table_is_dated_and_sourced_for_paris_and_ireland():
    # GIVEN the price table shipped with the package
    table = load_price_table()
    # THEN it has a date, and for both regions every service's prices cite an AWS pricing page
    assert date.fromisoformat(table["as_of"])
    for region in ("eu-west-3", "eu-west-1"):
        prices = table["regions"][region]
        for service in SERVICES:
            assert prices[service]["source"].startswith("https://aws.amazon.com/"), (region, service)
        assert prices["emr_instances"]["source_emr"] == "https://aws.amazon.com/emr/pricing/"
        for spec in prices["emr_instances"]["types"].values():
            assert spec["vcpu"] > 0 and spec["ec2_on_demand_hour"] > spec["emr_hour"] > 0


def test_lambda_line_is_images_times_duration_times_memory_at_the_table_price():
    # GIVEN one million images a day at 1024 MB
    table = load_price_table()
    a = Assumptions()
    result = estimate(1_000_000, "eu-west-3", table)
    # WHEN the Lambda compute line is read
    line = item(result, "Lambda compute")
    # THEN it is images x seconds x GB at the arm64 GB-second price, the seconds being the measured CPU
    # time at the function's vCPU share (1024/1769 of a core) plus its waits on S3 and the download
    seconds = (
        a.lambda_cpu_ms_per_image * 1769 / 1024
        + (a.ingest_puts_per_image + a.ingest_gets_per_image + 1.0) * a.s3_request_ms
        + a.image_kib / 1024 / a.s3_read_mib_per_second * 1000
    ) / 1000
    assert lambda_seconds_per_image(a) == pytest.approx(seconds)
    images = 1_000_000 * table["hours_per_month"] / 24
    assert line.quantity == pytest.approx(images * seconds * 1.0)
    gb_second = table["regions"]["eu-west-3"]["lambda"]["arm64_gb_second"]
    assert line.usd == pytest.approx(images * seconds * gb_second)


@pytest.mark.parametrize(
    ("images_per_day", "goal_usd"), [(10_000, 150), (1_000_000, 1_000), (100_000_000, 60_000)]
)
def test_each_scale_stays_within_its_monthly_goal(images_per_day, goal_usd):
    # GIVEN the shipped prices and the measured unit figures WHEN the estimate runs THEN it meets the goal
    assert estimate(images_per_day).total_usd <= goal_usd


def test_compute_follows_the_load_and_auto_keeps_the_cheaper_mode():
    # GIVEN the three scales of docs/operations.md
    small, medium, large = (estimate(n) for n in (10_000, 1_000_000, 100_000_000))
    # THEN the total grows with the rate
    assert small.total_usd < medium.total_usd < large.total_usd
    # AND auto prices the cheaper compute: EMR Serverless, one executor while the load needs no more
    for result in (small, medium, large):
        assert result.fleet.mode == min(result.fleet.compute_usd, key=result.fleet.compute_usd.get)
    assert small.fleet.mode == medium.fleet.mode == "serverless"
    assert small.fleet.executors_peak == medium.fleet.executors_peak == 1
    assert item(small, "EMR Serverless vCPU").usd == item(medium, "EMR Serverless vCPU").usd
    # AND at 100 M/day the executors follow the daily curve: billed for the hours they are up
    assert large.fleet.executors_peak > 50
    assert 1 < large.fleet.executors_average < max(DAILY_LOAD_CURVE) * large.fleet.executors_average
    assert large.fleet.executors_average < large.fleet.executors_peak / 2
    assert sum(DAILY_LOAD_CURVE) == pytest.approx(24)


def test_ec2_mode_bills_spot_task_nodes_hour_by_hour():
    # GIVEN EMR on EC2 at 100 M/day
    ec2 = estimate(100_000_000, assumptions=replace(Assumptions(), compute_mode="ec2"))
    small = estimate(10_000, assumptions=replace(Assumptions(), compute_mode="ec2"))
    # THEN primary and core nodes are always on, and task nodes are billed for the hours the curve needs
    for prefix in ("EMR primary", "EMR core"):
        assert item(small, prefix).usd == item(ec2, prefix).usd
    assert ec2.fleet.task_nodes_peak > 5
    assert ec2.fleet.task_nodes_average < ec2.fleet.task_nodes_peak
    assert item(ec2, "EMR task").quantity == pytest.approx(ec2.fleet.task_nodes_average * 730, rel=1e-2)
    assert ec2.fleet.scaling_maximum_units == 2 + ec2.fleet.task_nodes_peak


def test_task_nodes_are_billed_at_the_spot_factor_plus_the_full_emr_fee():
    # GIVEN the default task instance type's prices
    spec = load_price_table()["regions"]["eu-west-3"]["emr_instances"]["types"]["m7i.2xlarge"]
    # WHEN the estimate runs at two spot factors
    spot = replace(Assumptions(), spot_price_factor=0.3, compute_mode="ec2")
    cheap = item(estimate(100_000_000, assumptions=spot), "EMR task")
    # THEN the hourly price is the discounted EC2 price plus the undiscounted EMR fee
    assert cheap.unit_price == pytest.approx(spec["ec2_on_demand_hour"] * 0.3 + spec["emr_hour"])


def test_a_shorter_trigger_costs_more_s3_listing():
    # GIVEN a quiet pipeline (10,000 images a day)
    fast = estimate(10_000, assumptions=replace(Assumptions(), trigger_seconds=1))
    slow = estimate(10_000, assumptions=replace(Assumptions(), trigger_seconds=60))
    # THEN a 1 s trigger lists the source 60x more often than a 60 s one
    assert item(fast, "S3 LIST").quantity == pytest.approx(60 * item(slow, "S3 LIST").quantity)
    assert item(fast, "S3 PUT/COPY (stream").usd > item(slow, "S3 PUT/COPY (stream").usd


def test_image_storage_grows_linearly_with_retention():
    month = estimate(1_000_000, assumptions=replace(Assumptions(), retention_days=30))
    year = estimate(1_000_000, assumptions=replace(Assumptions(), retention_days=360))
    assert item(year, "S3 storage: clean").usd == pytest.approx(12 * item(month, "S3 storage: clean").usd)


def test_ireland_and_paris_use_their_own_prices():
    paris, ireland = estimate(1_000_000, "eu-west-3"), estimate(1_000_000, "eu-west-1")
    assert item(ireland, "S3 storage: clean").usd < item(paris, "S3 storage: clean").usd


def test_unknown_region_or_instance_type_is_a_clear_error():
    with pytest.raises(UnknownPriceError, match="eu-west-3"):
        estimate(1000, "us-east-1")
    with pytest.raises(UnknownPriceError, match=r"m7i\.2xlarge"):
        estimate(1000, assumptions=replace(Assumptions(), task_type="x9.huge"))


def test_command_prints_a_table_with_total_and_fleet(capsys):
    # WHEN the command runs for 1 million images a day
    assert fruits_cost("--images-per-day", "1000000") == 0
    out = capsys.readouterr().out
    # THEN it prints the dated header, one row per component, the total and the fleet
    assert "1,000,000 images/day in eu-west-3" in out and "prices as of" in out
    assert re.search(r"^total\s+[\d,]+\.\d\d$", out, re.MULTILINE)
    assert "fleet: EMR Serverless streaming job: driver 1 vCPU / 2 GB" in out
    assert re.search(r"^top three: S3 PUT/COPY \(ingest[^;]+ [\d,]+ USD; ", out, re.MULTILINE)
    for component in (
        "Lambda requests",
        "SQS requests",
        "S3 GET/HEAD (ingest)",
        "KMS requests",
        "EMR Serverless",
    ):
        assert component in out


def test_command_json_totals_its_items_and_takes_overrides(capsys):
    assert (
        fruits_cost(
            "--images-per-day",
            "100000000",
            "--region",
            "eu-west-1",
            "--json",
            "--trigger-seconds",
            "30",
            "--core-count",
            "3",
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert document["region"] == "eu-west-1"
    assert document["assumptions"]["trigger_seconds"] == 30
    assert document["assumptions"]["core_count"] == 3
    assert document["total_usd"] == pytest.approx(sum(line["usd"] for line in document["items"]), abs=0.05)


def test_command_refuses_bad_input():
    with pytest.raises(ConfigError, match="images-per-day"):
        fruits_cost("--images-per-day", "0")
    with pytest.raises(ConfigError, match="no prices for region"):
        fruits_cost("--images-per-day", "10", "--region", "us-east-1")


def test_table_format_lines_up():
    lines = format_table(estimate(10_000)).splitlines()
    header = next(line for line in lines if line.startswith("component"))
    rows = lines[lines.index(header) + 2 :]
    width = len(header)
    assert all(len(row) == width for row in rows if row.startswith(("Lambda", "SQS", "S3 ", "EMR")))


@pytest.mark.parametrize("images_per_day", [1, 100, 10_000])
def test_tiny_scales_print_no_bare_zero(images_per_day):
    """At 100 images a day the fleet line used to say "0 vCPUs at peak" and "concurrency ~0"."""
    result = estimate(images_per_day)
    assert result.fleet.vcpus_needed_peak > 0
    assert result.fleet.lambda_peak_concurrency > 0
    text = format_table(result)
    assert not re.search(r"(^|\s)0 vCPUs|~0 |~0\b|\(0\.00/s", text), text
    assert "vCPUs at peak" in text
    assert "(the default 8,000 is enough)" in text
    assert "peak concurrency < 1" in text


def test_small_figures_keep_two_significant_digits():
    from operations.cost import figure

    assert figure(0) == "0"
    assert figure(0.00005) == "< 0.001"
    assert figure(0.0058) == "0.0058"
    assert figure(0.58) == "0.58"
    assert figure(34.72) == "34.72"
    assert figure(1157.41) == "1,157.41"
    assert format_table(estimate(10_000)).count("0.0058 vCPUs at peak") == 1


def test_large_scales_keep_their_figures():
    text = format_table(estimate(100_000_000))
    assert "57.87 vCPUs at peak: EMR Serverless maximum capacity >= 59 workers" in text
    # 100 manifests a file: one 60 s trigger at the 3x peak lists 2,084 files
    assert "--max-files-per-trigger >= 2,084 (the default 8,000 is enough);" in text


def test_image_sizes_are_the_measured_photo():
    """The cost's upload and clean-image sizes are what the ingest makes of one synthetic 12 MP photo."""
    from benchmarks.clean_image_size import MAX_IMAGE_PIXELS, normalize_image, photo_like

    upload = photo_like(0)
    clean = normalize_image(upload, MAX_IMAGE_PIXELS)
    assumptions = Assumptions()
    assert max(clean.width, clean.height) == 448
    assert len(upload) / 1024 == pytest.approx(assumptions.image_kib, rel=0.05)
    assert len(clean.jpeg) / 1024 == pytest.approx(assumptions.clean_image_kib, rel=0.05)


def test_measured_figures_are_the_models_defaults():
    # GIVEN operations/unit_costs.json WHEN the model's defaults are read THEN they are its figures
    from benchmarks.unit_costs import template_batch_size

    figures = json.loads(UNIT_COSTS_PATH.read_text())
    a = Assumptions()
    requests = figures["ingest_s3_requests_per_image"]
    assert a.ingest_puts_per_image == requests["PutObject"]
    assert a.ingest_gets_per_image == requests["GetObject"] + requests["HeadObject"]
    assert a.stream_image_gets_per_image == figures["stream_s3_gets_per_image"]
    assert (a.image_kib, a.clean_image_kib, a.manifest_bytes) == (
        figures["image_kib"],
        figures["clean_image_kib"],
        figures["manifest_bytes"],
    )
    assert a.lambda_cpu_ms_per_image == figures["lambda_cpu_ms_per_image"]
    # AND the batch they were measured with is the template's
    assert figures["ingest_batch_size"] == a.sqs_batch_size == template_batch_size()
    # AND the function's memory holds the measured peak with room to spare
    assert figures["lambda_peak_rss_mb"] < 0.8 * a.lambda_memory_mb


@pytest.mark.slow
def test_a_fresh_measurement_of_the_cheap_figures_matches_the_committed_one():
    # GIVEN the committed figures WHEN the handler's S3 calls, the stream's reads and the bytes are measured
    # again (the real handler under moto, a versioned uploads bucket)
    from benchmarks.unit_costs import image_bytes, ingest_requests, stream_image_reads, template_batch_size

    figures = json.loads(UNIT_COSTS_PATH.read_text())
    fresh = ingest_requests(template_batch_size(), batches=1)
    sizes = image_bytes()
    # THEN each is within 5 % of the committed one (request counts: exactly the same operations)
    committed = figures["ingest_s3_requests_per_image"]
    assert fresh.keys() == committed.keys()
    for operation, count in committed.items():
        assert fresh[operation] == pytest.approx(count, rel=0.05), operation
    assert stream_image_reads() == pytest.approx(figures["stream_s3_gets_per_image"], rel=0.05)
    for name in ("image_kib", "clean_image_kib", "manifest_bytes"):
        assert sizes[name] == pytest.approx(figures[name], rel=0.05), name


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_docs_quote_the_commands_totals_and_top_items():
    # GIVEN `fruits cost` at the three documented scales
    results = {n: estimate(n) for n in (10_000, 1_000_000, 100_000_000)}
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    # THEN docs/operations.md's table has the three totals, in order
    totals = re.search(
        r"^\| \*\*total\*\* \| \*\*([\d,.]+)\*\* \| \*\*([\d,.]+)\*\* \| \*\*([\d,.]+)\*\* \|$",
        operations,
        re.M,
    )
    assert totals, "the three-scale table's total row is missing"
    assert [_money(value) for value in totals.groups()] == [round(r.total_usd, 2) for r in results.values()]
    # AND its top-three table names each scale's three largest items with their rounded amounts
    for n, result in results.items():
        row = re.search(rf"^\| {n:,} \| (.+) \| (.+) \| (.+) \|$", operations, re.M)
        assert row, f"no top-three row for {n:,}"
        for cell, line in zip(row.groups(), top_items(result), strict=True):
            label, amount = cell.rsplit(" ", 1)
            assert line.component.startswith(
                label.split(" (")[0].removesuffix(" vCPU").removesuffix(" memory")
            )
            assert _money(amount) == round(line.usd)
    # AND `--json` carries the same top three
    assert [entry["component"] for entry in results[10_000].as_dict()["top_items"]] == [
        line.component for line in top_items(results[10_000])
    ]
    # AND the README quotes the same totals
    for n, result in results.items():
        assert f"| {n:,} | {result.total_usd:,.2f} |" in readme


def test_the_docs_group_rows_are_the_one_grouping_of_the_commands_items():
    # GIVEN `fruits cost` at the three documented scales, grouped by operations.cost.COST_GROUPS
    # (the grouping the slides' cost page uses too)
    scales = (10_000, 1_000_000, 100_000_000)
    grouped = [grouped_usd((item.component, item.usd) for item in estimate(n).items) for n in scales]
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    # THEN each group is a row of docs/operations.md's three-scale table, with the rounded amounts
    for name, _ in COST_GROUPS:
        row = re.search(rf"^\| {re.escape(name)} \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", operations, re.M)
        assert row, f"no row for the group {name!r}"
        assert [_money(value) for value in row.groups()] == [round(by_group[name]) for by_group in grouped]


def test_a_component_outside_every_group_is_refused():
    # GIVEN a line item no group of COST_GROUPS covers WHEN it is grouped THEN it is an error, not a loss
    with pytest.raises(ValueError, match="fits no group"):
        grouped_usd([("Lambda compute", 1.0), ("Teleportation", 2.0)])
