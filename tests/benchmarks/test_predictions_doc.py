"""docs/predictions.md quotes the last run of benchmarks/predictions.py (docs/data/predictions.json)."""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULT = json.loads((REPO_ROOT / "docs" / "data" / "predictions.json").read_text())
DOC = (REPO_ROOT / "docs" / "predictions.md").read_text()


def quoted_figures(result: dict) -> list[str]:
    """The figures as the page writes them."""
    return [
        f"{result['images']} real Fruits-360 images",
        f"{result['train_images']} to train on",
        f"{result['unseen_images']} never seen",
        f"held-out accuracy **{result['held_out_accuracy']:.4f}** ({result['held_out_rows']} rows,",
        f"**{result['prediction_accuracy']:.4f}** on the {result['scored_rows']} never-seen images",
        f"agrees with the stream on **{100 * result['app_agreement']:.2f} %**",
        f"**{result['app_model_bytes'] / 1e6:.2f} MB**",
        f"{result['app_latency_ms_p50']} ms per image (p50), {result['app_latency_ms_p95']} ms (p95)",
        f"{result['stream_images_per_s_without_scoring']} images/s without scoring",
        f"{result['stream_images_per_s_with_scoring']} with it",
        f"ratio **{result['stream_scoring_ratio']:.3f}**",
        f"{result['classifier_bytes']:,} bytes",
        f"k = {result['k']}",
    ]


def test_the_predictions_page_quotes_the_benchmark_it_names():
    missing = [figure for figure in quoted_figures(RESULT) if figure not in DOC]
    assert missing == []
    assert "python -m benchmarks.predictions" in DOC


def test_the_benchmark_met_the_quality_targets_it_reports():
    # The targets, checked on the committed run (a drifted run fails here, not in a timed test).
    assert RESULT["held_out_accuracy"] >= 0.99 and RESULT["prediction_accuracy"] >= 0.99
    assert RESULT["app_agreement"] >= 0.99


def test_the_predictions_page_quotes_the_scoring_cost_it_names():
    # GIVEN docs/data/scoring_cost.json, `python -m benchmarks.scoring_cost` (a worker's steps, interleaved)
    cost = json.loads((REPO_ROOT / "docs" / "data" / "scoring_cost.json").read_text())
    flat = DOC.replace("\n", " ")
    # THEN the page quotes each figure as the command wrote it, and the run scored every row
    for figure in (
        f"{cost['scoring_ms_per_image']} ms per image",
        f"{cost['featurize_ms_per_image']} ms",
        f"**{cost['worker_ratio_with_scoring']:.4f}**",
        f"{cost['images_per_round']} real images, {cost['rounds']} rounds",
        f"load average {cost['load_average'][0]}",
    ):
        assert figure in flat, figure
    assert "python -m benchmarks.scoring_cost" in DOC
    assert cost["scored_rows"] == cost["images_per_round"]
