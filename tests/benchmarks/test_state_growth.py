"""The state-growth simulation at tiny scale: the 30-day run's script, real source and checkpoints."""

from __future__ import annotations

import json

import pytest

from benchmarks.state_growth import main

pytestmark = [pytest.mark.slow, pytest.mark.spark]

DAYS = 4
PER_DAY = 30


def test_epochs_keep_the_checkpoint_to_one_day_while_one_checkpoint_grows(tmp_path):
    # GIVEN 4 simulated days of 30 manifests, 10 per batch
    out = tmp_path / "state_growth.json"
    plot = tmp_path / "state_growth.png"
    # WHEN both designs are simulated
    scale = ["--days", str(DAYS), "--per-day", str(PER_DAY), "--max-files-per-trigger", "10"]
    outputs = ["--workdir", str(tmp_path / "work"), "--json-out", str(out), "--plot-out", str(plot)]
    assert main([*scale, *outputs]) == 0

    # THEN each design has one record per day, and the plot is a PNG
    results = json.loads(out.read_text())
    forever, epochs = results["designs"]["forever"], results["designs"]["epochs"]
    assert [record["day"] for record in forever] == [record["day"] for record in epochs] == [1, 2, 3, 4]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # AND one checkpoint forever delivers each manifest once, and its checkpoint grows day after day
    assert all(record["redelivered"] == 0 for record in forever)
    assert forever[-1]["checkpoint_bytes"] > forever[0]["checkpoint_bytes"]
    # AND with daily epochs only the current epoch is left: smaller than the forever checkpoint by the end
    assert epochs[-1]["checkpoint_bytes"] < forever[-1]["checkpoint_bytes"]
    assert [path.name for path in (tmp_path / "work" / "epochs" / "checkpoints" / "features").iterdir()] == [
        f"epoch={DAYS - 1}"
    ]
    # AND a new epoch re-reads at most the last batch that cleanSource had not archived yet
    assert all(record["redelivered"] <= 10 for record in epochs)
    # AND with archive the listing stays at one day's manifests (plus that last batch) in both designs
    assert max(record["max_files_listed"] for record in forever + epochs) <= PER_DAY + 10
