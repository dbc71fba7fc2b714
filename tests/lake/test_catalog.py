"""The lake's catalog and tables: where they live, their v2 schemas, and that creating them is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyiceberg.transforms import DayTransform
from pyiceberg.types import TimestamptzType

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_lake import catalog as lake_catalog
from fruits_lake.catalog import ERRORS_TABLE, FEATURES_TABLE, ensure_tables, open_catalog
from tests.table_rows import feature_rows


def test_a_local_lake_keeps_its_catalog_and_tables_in_the_lake(tmp_path: Path):
    # GIVEN an empty lake directory WHEN its tables are ensured
    features, errors = ensure_tables(open_catalog(str(tmp_path)))
    # THEN the SQLite catalog sits under catalog/, the errors table at errors/ and the features table
    # in a folder of its own under features/
    assert (tmp_path / contracts.CATALOG_PREFIX / lake_catalog.CATALOG_FILE).is_file()
    assert errors.location() == (tmp_path / "errors").as_uri()
    (folder,) = (tmp_path / "features").iterdir()
    assert features.location() == folder.as_uri()
    assert folder.name.startswith("features-")
    # AND each commit deletes metadata files beyond the last 100 (the stream commits every few seconds)
    for table in (features, errors):
        assert table.properties["write.metadata.delete-after-commit.enabled"] == "true"


def test_ensuring_twice_by_path_and_by_uri_opens_the_same_tables_and_writes_nothing_more(tmp_path: Path):
    # GIVEN a lake whose tables exist
    ensure_tables(open_catalog(str(tmp_path)))
    metadata_files = sorted(tmp_path.rglob("*.metadata.json"))
    # WHEN they are ensured again through the lake's file:// URI
    features, _ = ensure_tables(open_catalog(tmp_path.as_uri()))
    # THEN the same tables load and no metadata file was added
    assert sorted(tmp_path.rglob("*.metadata.json")) == metadata_files
    assert features.name() == tuple(FEATURES_TABLE.split("."))


def test_tables_have_the_v2_columns_real_timestamps_and_day_partitions(tmp_path: Path):
    features, errors = ensure_tables(open_catalog(str(tmp_path)))
    assert [field.name for field in features.schema().fields] == contracts.field_names(
        contracts.FEATURES_FIELDS
    )
    assert [field.name for field in errors.schema().fields] == contracts.field_names(contracts.ERROR_FIELDS)
    assert features.schema().find_field("uploaded_at").field_type == TimestamptzType()
    assert features.schema().find_field("uploaded_at").required
    assert features.schema().find_field("subject_id").required is False
    for table, source in ((features, "uploaded_at"), (errors, "processed_at")):
        (partition,) = table.spec().fields
        assert partition.name == contracts.PARTITION_FIELD
        assert partition.transform == DayTransform()
        assert table.schema().find_column_name(partition.source_id) == source


def test_appended_rows_land_in_one_folder_per_upload_day(tmp_path: Path):
    features, _ = ensure_tables(open_catalog(str(tmp_path)))
    days = [datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 2, 0, tzinfo=UTC)]
    rows = feature_rows(
        ["a" * 32, "b" * 32],
        subject_id=[None, "s"],
        key_version=[None, "3"],
        label=["apple", "banana"],
        uploaded_at=days,
        features=[[1.0, 2.0], [3.0, 4.0]],
        pca_residual=[0.1, 0.2],
    )
    features.append(rows)
    data = Path(features.location().removeprefix("file://")) / "data"
    folders = sorted(path.name for path in data.iterdir())
    assert folders == ["dt=2026-03-01", "dt=2026-03-02"]
    assert features.scan().to_arrow().num_rows == 2


def test_an_s3_lake_needs_the_stage_glue_database(monkeypatch):
    monkeypatch.delenv(lake_catalog.GLUE_DATABASE_ENV, raising=False)
    with pytest.raises(ConfigError, match=lake_catalog.GLUE_DATABASE_ENV):
        open_catalog("s3://fruits-lake-dev")
    monkeypatch.setenv(lake_catalog.GLUE_DATABASE_ENV, "Fruits-Dev")
    with pytest.raises(ConfigError, match="lowercase"):
        open_catalog("s3://fruits-lake-dev")


def test_on_glue_the_fruits_namespace_is_the_stage_database(mocked_aws, monkeypatch):
    # GIVEN an s3:// lake whose stage database is fruits_dev (moto's Glue)
    monkeypatch.setenv(lake_catalog.GLUE_DATABASE_ENV, "fruits_dev")
    catalog = open_catalog("s3://fruits-lake-dev/")
    # WHEN the namespace every caller names is created
    catalog.create_namespace_if_not_exists(lake_catalog.NAMESPACE)
    # THEN Glue holds the stage database, and table names map into it
    import boto3

    assert boto3.client("glue").get_database(Name="fruits_dev")["Database"]["Name"] == "fruits_dev"
    assert catalog.identifier_to_database_and_table(ERRORS_TABLE) == ("fruits_dev", "errors")
    assert catalog.properties[lake_catalog.LAKE_PROPERTY] == "s3://fruits-lake-dev"


def test_a_lake_uri_of_another_scheme_is_refused():
    with pytest.raises(ConfigError, match="file:///absolute/path"):
        open_catalog("hdfs://namenode/lake")
