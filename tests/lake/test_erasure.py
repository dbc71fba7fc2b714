"""The table part of an erasure: after it, no byte derived from the subject's pseudonym is in any file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from pyiceberg.avro.file import AvroFile
from pyiceberg.expressions import In
from pyiceberg.io.pyarrow import PyArrowFileIO, _dataframe_to_data_files

from fruits_lake.catalog import (
    FEATURES_TABLE,
    NAMESPACE,
    SUBJECT_METRICS_PROPERTY,
    TABLE_PROPERTIES,
    ensure_tables,
    open_catalog,
)
from fruits_lake.commit_retry import RetryPolicy
from fruits_lake.erasure import SubjectMatch, erase_from_table
from fruits_lake.schemas import FEATURES_SCHEMA, FEATURES_SPEC
from tests.lake.test_sink import ALICE, BOB, feature_rows, image_ids


def derived_forms(pseudonym: str) -> list[str]:
    """What of a pseudonym can land in a file: all of it, or the 16 characters of a column bound."""
    return [pseudonym, pseudonym[:16]]


def files_naming(root: Path, needles: list[str]) -> list[str]:
    """Every file under `root` whose bytes, decoded Parquet values or decoded Avro records hold a needle."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        texts = [path.read_bytes().decode("latin-1")]
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        elif path.suffix == ".avro":
            with AvroFile(PyArrowFileIO().new_input(str(path))) as avro:
                texts.append("".join(_text(record) for record in avro))
        if any(needle in text for text in texts for needle in needles):
            found.append(path.relative_to(root).as_posix())
    return found


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "items"):
        return "".join(_text(k) + _text(v) for k, v in value.items())
    if isinstance(value, list | tuple) or type(value).__name__ == "Record":
        return "".join(_text(item) for item in value)
    return str(value)


def test_no_file_of_the_lake_keeps_a_trace_of_her_after_the_erasure(tmp_path: Path):
    # GIVEN a features table written before the no-statistics rule (her pseudonym's prefix is a
    # column bound in its manifests), with her rows and bob's over two commits
    catalog = open_catalog(str(tmp_path))
    catalog.create_namespace(NAMESPACE)
    table = catalog.create_table(
        FEATURES_TABLE,
        schema=FEATURES_SCHEMA,
        partition_spec=FEATURES_SPEC,
        location=(tmp_path / "features" / "features-old").as_uri(),
        properties=TABLE_PROPERTIES,
    )
    table.append(feature_rows(image_ids(3), subject=ALICE))
    table.append(feature_rows(image_ids(2, start=10), subject=BOB))
    # AND the files of an append killed before its commit: her rows in a data file and a manifest
    # that no snapshot references
    killed = table.refresh().transaction()
    with killed.update_snapshot().fast_append() as append_files:
        for data_file in _dataframe_to_data_files(
            table_metadata=killed.table_metadata,
            write_uuid=append_files.commit_uuid,
            df=feature_rows(image_ids(2, start=20), subject=ALICE),
            io=table.io,
        ):
            append_files.append_data_file(data_file)
    assert len(files_naming(tmp_path, derived_forms(ALICE))) >= 4

    # WHEN the erasure's table part runs
    done = erase_from_table(
        lambda: catalog.load_table(FEATURES_TABLE),
        SubjectMatch(In("subject_id", [ALICE]), "subject_id", frozenset({ALICE})),
        "request-1",
        lambda: datetime.now(UTC),
    )

    # THEN her rows are counted, the killed append's files are gone, no file names her in any form,
    # and bob's rows are untouched
    assert done.rows_deleted == 3 and done.orphan_files_removed >= 2 and done.orphan_files_left == 0
    assert files_naming(tmp_path, derived_forms(ALICE)) == []
    rows = catalog.load_table(FEATURES_TABLE).scan().to_arrow()
    assert sorted(rows.column("image_id").to_pylist()) == image_ids(2, start=10)
    # AND the table keeps no statistics of the pseudonym from now on
    assert catalog.load_table(FEATURES_TABLE).properties[SUBJECT_METRICS_PROPERTY] == "none"


def test_an_erasure_step_that_loses_a_commit_race_is_retried_on_a_fresh_table(tmp_path: Path):
    # GIVEN her rows, and a stream that commits between the erasure's load of the table and its
    # row delete (the handle the delete holds is then stale)
    catalog = open_catalog(str(tmp_path))
    features, _ = ensure_tables(catalog)
    features.append(feature_rows(image_ids(2), subject=ALICE))
    loads = []

    def load_then_stream_commits():
        table = catalog.load_table(FEATURES_TABLE)
        loads.append(table.metadata.current_snapshot_id)
        if len(loads) == 4:  # the name, statistics rule, fence, then the row delete
            catalog.load_table(FEATURES_TABLE).append(feature_rows(image_ids(1, start=40), subject=BOB))
        return table

    # WHEN the erasure runs
    done = erase_from_table(
        load_then_stream_commits,
        SubjectMatch(In("subject_id", [ALICE]), "subject_id", frozenset({ALICE})),
        "request-2",
        lambda: datetime.now(UTC),
        RetryPolicy(sleep=lambda _: None),
    )
    # THEN the delete lost the race once, ran again on the reloaded table, and both changes hold
    # (loads: the name, statistics rule, fence, delete twice, seal, purge, orphan purge)
    assert done.rows_deleted == 2 and len(loads) == 8
    rows = catalog.load_table(FEATURES_TABLE).scan().to_arrow()
    assert rows.column("subject_id").to_pylist() == [BOB]
