"""`fruits lake maintain` on an s3:// lake: pyiceberg's Glue catalog and S3 FileIO against moto.

moto runs as a local server: the Glue catalog's boto3 client reaches it through
AWS_ENDPOINT_URL, and pyarrow's S3 filesystem (pyiceberg's FileIO) through the
catalog's `s3.endpoint` property. S3 cannot back-date an object, so the run's
clock is moved two days ahead instead to make the files old enough to be orphans.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from moto.server import ThreadedMotoServer
from small_files_lake import BATCHES_PER_DAY, DAYS, feature_rows

from fruits_core.clock import utc_now
from fruits_lake.catalog import FEATURES_TABLE, GLUE_DATABASE_ENV, ensure_tables, open_catalog
from fruits_lake.compaction import data_files_per_partition
from fruits_lake.maintenance import MaintainOptions, maintain_lake
from fruits_lake.orphans import referenced_files

REGION = "eu-west-3"
BUCKET = "fruits-test-lake"
DATABASE = "fruits_test"


@pytest.fixture
def moto_endpoint(monkeypatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name in [name for name in list(__import__("os").environ) if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv(GLUE_DATABASE_ENV, DATABASE)
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # The database is the template's (template.yaml LakeDatabase), not the code's to create.
    boto3.client("glue").create_database(DatabaseInput={"Name": DATABASE})
    yield endpoint
    server.stop()


def _catalog(endpoint: str):
    catalog = open_catalog(f"s3://{BUCKET}")
    catalog.properties.update({"s3.endpoint": endpoint, "s3.region": REGION})
    return catalog


def _keys(prefix: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_maintain_an_s3_lake_through_the_glue_catalog(moto_endpoint):
    # GIVEN an s3:// lake whose tables are in the stage's Glue database, with small files over 3 days
    features, _ = ensure_tables(_catalog(moto_endpoint))
    for day in DAYS:
        for batch in range(BATCHES_PER_DAY):
            features.append(feature_rows(day, batch))
    glue_table = boto3.client("glue").get_table(DatabaseName=DATABASE, Name="features")["Table"]
    assert glue_table["Parameters"]["table_type"] == "ICEBERG"
    ids = sorted(features.scan().to_arrow().column("image_id").to_pylist())
    folder = features.location().removeprefix(f"s3://{BUCKET}/")
    planted = f"{folder}/data/dt=2020-01-01/left-by-a-failed-commit.parquet"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=planted, Body=b"PAR1")

    # WHEN maintain runs two days from now (every file is then past the orphan minimum age)
    options = MaintainOptions(snapshot_retention=timedelta(0), keep_snapshots=1)
    reports = maintain_lake(_catalog(moto_endpoint), options, clock=lambda: utc_now() + timedelta(days=2))
    report = {report.table: report for report in reports}[FEATURES_TABLE]

    # THEN the Glue table points at a metadata file with one data file per partition, the same rows
    table = _catalog(moto_endpoint).load_table(FEATURES_TABLE)
    assert sorted(data_files_per_partition(table).values()) == [1, 1, 1]
    assert sorted(table.scan().to_arrow().column("image_id").to_pylist()) == ids
    assert len(table.snapshots()) == 1
    # AND the S3 objects under features/ are exactly the files the table references (besides the
    # empty "folder/" markers pyarrow's S3 filesystem writes)
    files = {f"{BUCKET}/{key}" for key in _keys("features/") if not key.endswith("/")}
    assert files == referenced_files(table)
    assert planted not in _keys("features/")
    assert report.partitions_compacted == 3 and report.orphan_files_removed > 3 * BATCHES_PER_DAY
