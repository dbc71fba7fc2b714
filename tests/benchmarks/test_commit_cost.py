"""The commit-cost benchmark writes through the real sink: its lake ends with each row once."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.commit_cost import main
from fruits_lake.reading import committed_rows, lake_tables


def test_the_benchmark_commits_every_batch_once_and_the_reset_pass_adds_no_feature_row(
    tmp_path: Path, capsys
):
    # WHEN 3 batches of 40 rows are committed by one query, then re-read by another
    assert main(["--rows", "40", "--batches", "3", "--error-rows", "2", "--lake", str(tmp_path)]) == 0
    (size,) = json.loads(capsys.readouterr().out)["sizes"]
    # THEN the features table holds the 120 rows once, the errors table both passes' error rows
    features, errors = lake_tables(str(tmp_path / "rows-40"))
    assert committed_rows(features) == size["table_rows"] == 120
    assert committed_rows(errors) == 2 * 3 * 2
    assert len(features.metadata.snapshots) == 3
    assert size["steady"]["median_s"] > 0 and size["reset"]["median_s"] > 0
    assert size["featurize_s_at_rate"] == 0.1


def test_a_bad_setting_is_a_configuration_error(capsys):
    assert main(["--rows", "0"]) == 2
    assert "commit_cost: configuration error" in capsys.readouterr().err
