"""A new checkpoint over an existing lake neither loses nor duplicates a row, whatever --clean-source does.

And one features table never holds two models: a PCA change is refused, or with
--new-model-table gets a table of its own. Real ingested images, the real stream.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from fruits_core.errors import ConfigError
from fruits_lake.catalog import FEATURES_TABLE, K_PROPERTY, open_catalog
from fruits_lake.reading import lake_tables
from fruits_lake.table_versions import archived_table_name
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming.stream_testkit import PCA_K, PCA_SAMPLE, every_nth, ingest_images, stream_config

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.tf]

FIRST_IMAGES = 40
MORE_IMAGES = 10


def run_to_end(spark, config) -> list[dict]:
    """Stream the backlog (--available-now); return the run's progress records."""
    running = start_stream(spark, config)
    await_stream(spark, running, config, threading.Event())
    return running.listener.records


def feature_ids(lake: Path) -> list[str]:
    features, _ = lake_tables(lake.as_uri())
    return features.scan().to_arrow().column("image_id").to_pylist()


@pytest.mark.parametrize("clean_source", ["off", "archive", "delete"])
def test_a_checkpoint_reset_neither_loses_nor_duplicates(
    spark, models, sample_image_paths, tmp_path, clean_source
):
    # GIVEN a lake whose first 40 images were streamed
    lake = tmp_path / "lake"
    images = every_nth(sample_image_paths, FIRST_IMAGES + MORE_IMAGES)
    first = ingest_images(lake, tmp_path / "uploads", images[:FIRST_IMAGES])
    config = stream_config(
        lake, *models, "--available-now", "--clean-source", clean_source, "--max-files-per-trigger", "16"
    )
    run_to_end(spark, config)
    assert sorted(feature_ids(lake)) == sorted(outcome.image_id for outcome in first)
    # WHEN its checkpoint is deleted (a reset), 10 more images arrive, and the stream runs again
    shutil.rmtree(lake / "checkpoints")
    more = ingest_images(lake, tmp_path / "uploads", images[FIRST_IMAGES:])
    records = run_to_end(spark, config)
    # THEN each of the 50 images is in the table exactly once
    ids = feature_ids(lake)
    assert sorted(ids) == sorted(outcome.image_id for outcome in [*first, *more])
    assert len(ids) == len(set(ids)) == FIRST_IMAGES + MORE_IMAGES
    # AND the re-read ones were counted as already in the table, not as new rows
    reread = sum(record["input_rows"] for record in records) - MORE_IMAGES
    assert sum(record["already_in_table"] for record in records) == reread
    assert sum(record["feature_rows"] for record in records) == MORE_IMAGES
    if clean_source == "off":
        assert reread == FIRST_IMAGES


@pytest.fixture(scope="module")
def other_pca(spark, models, sample_image_paths, tmp_path_factory) -> str:
    """A PCA of another k (PCA_K - 1) on the same featurizer."""
    from streaming_job.featurizer.pca import fit_pca

    pca_uri = (tmp_path_factory.mktemp("other-pca") / "pca").as_uri()
    sample = every_nth(sample_image_paths, PCA_SAMPLE)
    fit_pca(spark, [path.resolve().as_uri() for path in sample], models[0], pca_uri, k=PCA_K - 1)
    return pca_uri


def test_a_new_pca_is_refused_then_with_the_flag_gets_a_table_of_its_own(
    spark, models, other_pca, sample_image_paths, tmp_path
):
    # GIVEN a lake streamed with the k=4 PCA
    lake = tmp_path / "lake"
    images = every_nth(sample_image_paths, 7)
    ingest_images(lake, tmp_path / "uploads", images[:4])
    run_to_end(spark, stream_config(lake, *models, "--available-now"))
    old_features, _ = lake_tables(lake.as_uri())
    old_pca_version = old_features.properties["fruits.pca-version"]
    # WHEN the stream starts with a k=3 PCA on the same checkpoint, without the flag
    ingest_images(lake, tmp_path / "uploads", images[4:])
    changed = stream_config(lake, models[0], other_pca, "--available-now")
    # THEN it refuses, naming the flag, and writes nothing
    with pytest.raises(ConfigError, match="--new-model-table"):
        start_stream(spark, changed)
    assert len(feature_ids(lake)) == 4
    # WHEN it starts with --new-model-table (and a new checkpoint, as a model change needs)
    shutil.rmtree(lake / "checkpoints")
    run_to_end(spark, stream_config(lake, models[0], other_pca, "--available-now", "--new-model-table"))
    # THEN the old table is kept under its PCA version with its 4 rows of k=4, and the new one holds
    # every image (the 3 new ones and the 4 re-read ones) with k=3 only
    catalog = open_catalog(lake.as_uri())
    archived = catalog.load_table(archived_table_name(old_pca_version)).scan().to_arrow()
    current = catalog.load_table(FEATURES_TABLE)
    assert {len(vector) for vector in archived.column("features").to_pylist()} == {PCA_K}
    assert archived.num_rows == 4
    assert current.properties[K_PROPERTY] == str(PCA_K - 1)
    vectors = current.scan().to_arrow().column("features").to_pylist()
    assert {len(vector) for vector in vectors} == {PCA_K - 1}
    assert len(vectors) == 7
