"""Figures quoted in docs/*.md, the README and the notebook agree with the files the commands wrote.

docs/data/demo.json is `fruits demo --record` output, docs/data/bench.json is `fruits bench --json`
output: re-run the command and these tests say which page to update.
"""

from __future__ import annotations

import json
import re
import statistics

import pytest

# "k = 15 for 95.2 %": the form every page uses for the demo's PCA on the bundled images.
PCA_HEADLINE = re.compile(r"k = (\d+) for (\d+\.\d) %")


@pytest.fixture(scope="module")
def demo(repo_root) -> dict:
    return json.loads((repo_root / "docs" / "data" / "demo.json").read_text())


@pytest.fixture(scope="module")
def bench(repo_root) -> dict:
    return json.loads((repo_root / "docs" / "data" / "bench.json").read_text())


def percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def headline(demo: dict) -> str:
    return f"k = {demo['k']} for {percent(demo['explained_variance'])}"


def pages(repo_root) -> dict[str, str]:
    found = {path.name: path.read_text() for path in sorted((repo_root / "docs").glob("*.md"))}
    found["README.md"] = (repo_root / "README.md").read_text()
    found["local_pipeline.py"] = (repo_root / "notebooks" / "local_pipeline.py").read_text()
    return found


def test_the_recorded_demo_names_no_machine_folder(demo):
    assert not {"workdir", "images_dir", "plots", "features_table"} & set(demo)
    assert demo["featurized"] == demo["accepted"] and demo["errors"] == 0


def test_every_pca_headline_in_the_docs_is_the_demos(repo_root, demo):
    # GIVEN every "k = N for X %" the docs, the README and the notebook's source quote
    quoted = {
        (name, match.group(0))
        for name, text in pages(repo_root).items()
        for match in PCA_HEADLINE.finditer(text.replace("\n", " "))
    }
    # THEN each is the demo's recorded one, and the pages that report the demo quote it
    assert {phrase for _, phrase in quoted} == {headline(demo)}, sorted(quoted)
    for name in ("performance.md", "featurizer.md", "stream.md"):
        assert (name, headline(demo)) in quoted, name


def test_the_performance_page_quotes_the_demos_quality_figures(repo_root, demo):
    text = (repo_root / "docs" / "performance.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| feature quality |"))
    assert headline(demo) in row
    assert f"PC1 {percent(demo['pc1_share'])}" in row
    assert f"on the {demo['k']} PCA features {demo['linear_probe_accuracy']:.3f}" in row


def test_the_featurizer_page_quotes_the_demos_pc1_share(repo_root, demo):
    text = (repo_root / "docs" / "featurizer.md").read_text().replace("\n", " ")
    assert f"{headline(demo)} of the variance (`docs/data/demo.json`)" in text
    assert f"PC1 {percent(demo['pc1_share'])}" in text


def test_the_notebooks_committed_summary_is_the_demos_pca(repo_root, demo):
    # The notebook fits on the same clean images with the same code: the same k and variance.
    notebook = json.loads((repo_root / "notebooks" / "local_pipeline.ipynb").read_text())
    summary = "".join(notebook["cells"][-1]["outputs"][-1]["text"])
    lines = dict(line.rsplit(maxsplit=1) for line in summary.strip().splitlines())
    assert lines["featurized"] == str(demo["featurized"])
    assert lines["k"] == str(demo["k"])
    assert lines["explained variance"] == f"{demo['explained_variance']:.1%}"


def test_the_224_px_bench_row_is_the_committed_report(repo_root, bench):
    # GIVEN docs/data/bench.json, one `fruits bench --json` run at 224 px
    runtimes = bench["runtimes"]
    expected = [
        f"{runtimes['litert']['alone']['images_per_s']:,.1f}",
        f"{runtimes['litert']['stream']['steady_images_per_s']:,.1f}",
        f"**{runtimes['litert']['ratio_stream_vs_alone']:.2f}**",
        f"{runtimes['keras']['alone']['images_per_s']:,.1f}",
        f"{runtimes['keras']['stream']['steady_images_per_s']:,.1f}",
        f"{runtimes['keras']['ratio_stream_vs_alone']:.2f}",
        f"**{bench['ratio_litert_stream_vs_keras_stream']:.2f}**",
    ]
    # THEN docs/performance.md's 224 px row quotes it, and says it is one run
    text = (repo_root / "docs" / "performance.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 224 px |"))
    assert [cell.strip() for cell in row.strip("|").split("|")][1:] == expected
    assert bench["config"]["repeat"] == 1 and "**one run per size**" in text
    assert f"PCA k = {bench['config']['k']};" in text.replace("\n", " ")


def repeat_rows(report: dict) -> list[str]:
    """docs/performance.md's two tables of `fruits bench --repeat N` (docs/data/bench_repeat.json)."""
    litert = report["runtimes"]["litert"]

    def spread(bounds: list[float]) -> str:
        return f"{bounds[0]:,.1f}-{bounds[1]:,.1f}"

    def ratio_spread(bounds: list[float]) -> str:
        return f"{bounds[0]:.2f}-{bounds[1]:.2f}"

    return [
        f"| alone | {litert['alone']['images_per_s']:,.1f} | "
        f"{spread(litert['alone']['images_per_s_spread'])} |",
        f"| stream, scoring every row | {litert['stream']['steady_images_per_s']:,.1f} | "
        f"{spread(litert['stream']['steady_images_per_s_spread'])} |",
        f"| stream, `--no-predictions` | {litert['stream_no_scoring']['steady_images_per_s']:,.1f} | "
        f"{spread(litert['stream_no_scoring']['steady_images_per_s_spread'])} |",
        f"| stream / alone | **{litert['ratio_stream_vs_alone']:.2f}** | "
        f"{ratio_spread(litert['ratio_stream_vs_alone_spread'])} |",
        f"| stream with / without scoring | **{litert['ratio_scoring']:.2f}** | "
        f"{ratio_spread(litert['ratio_scoring_spread'])} |",
    ]


def test_the_medians_of_interleaved_runs_are_the_committed_report(repo_root):
    # GIVEN docs/data/bench_repeat.json, `fruits bench --runtimes litert ... --repeat N --json` at 224 px
    report = json.loads((repo_root / "docs" / "data" / "bench_repeat.json").read_text())
    config, machine = report["config"], report["machine"]
    assert config["repeat"] >= 3 and config["input_size"] == 224
    text = (repo_root / "docs" / "performance.md").read_text()
    flat = text.replace("\n", " ")
    # THEN docs/performance.md quotes every median, spread and ratio, the run count and the load
    missing = [row for row in repeat_rows(report) if row not in text]
    assert missing == []
    assert f"median of {config['repeat']} interleaved runs" in flat
    load = (
        f"load average {machine['load_average_before'][0]} before, {machine['load_average_after'][0]} after"
    )
    assert load in flat
    # and docs/predictions.md quotes the scoring ratio from the same report
    scoring = report["runtimes"]["litert"]["ratio_scoring"]
    assert (
        f"**{scoring:.2f}** of the stream without it" in (repo_root / "docs" / "predictions.md").read_text()
    )


def seconds_spread(runs: list[dict], batch: int) -> str:
    durations = [run["batches"][batch]["duration_ms"] / 1000 for run in runs]
    return f"{min(durations):.1f}-{max(durations):.1f} s"


def test_the_interleaved_runs_batch_times_are_quoted_as_recorded(repo_root):
    # GIVEN the interleaved report's runs: a warm-up micro-batch, then one steady batch each
    litert = json.loads((repo_root / "docs" / "data" / "bench_repeat.json").read_text())["runtimes"]["litert"]
    scored, unscored = litert["stream"]["runs"], litert["stream_no_scoring"]["runs"]
    assert {len(run["batches"]) for run in scored + unscored} == {2}
    text = (repo_root / "docs" / "performance.md").read_text().replace("\n", " ")
    # THEN the page quotes both modes' steady batch times and their warm-up medians
    assert (
        f"it took {seconds_spread(scored, 1)} with scoring and {seconds_spread(unscored, 1)} without" in text
    )

    def warmup(runs: list[dict]) -> str:
        return f"{statistics.median(run['batches'][0]['duration_ms'] for run in runs) / 1000:.1f} s"

    assert f"(median {warmup(scored)} with scoring, {warmup(unscored)} without)" in text


@pytest.fixture(scope="module")
def paired(repo_root) -> dict:
    return json.loads((repo_root / "docs" / "data" / "bench_scoring_paired.json").read_text())


def test_the_paired_scoring_figure_is_the_committed_report(repo_root, paired):
    # GIVEN docs/data/bench_scoring_paired.json, `fruits bench --modes scoring_paired ... --json` at 224 px
    config, machine = paired["config"], paired["machine"]
    figures = paired["runtimes"]["litert"]["scoring_paired"]
    assert config["input_size"] == 224 and figures["alternated"] and figures["pairs"] >= 6
    low, high = figures["pair_ratio_spread"]
    load = (
        f"load average {machine['load_average_before'][0]} before, {machine['load_average_after'][0]} after"
    )
    quoted = [
        f"**{figures['pair_ratio']:.3f}** (median of {figures['pairs']} pairs, {low:.3f}-{high:.3f})",
        load,
        f"{config['n']:,} images at 224 px, {config['paired_max_files_per_trigger']} per micro-batch",
        f"{figures['scored_rows']:,} of the {figures['scored_batch_rows']:,} rows of the scored batches",
        f"{figures['unscored_batch_predictions']} of the {figures['unscored_batch_rows']:,} others",
        f"{figures['scored_images_per_s']:.1f} images/s scored, "
        f"{figures['unscored_images_per_s']:.1f} unscored",
    ]
    verdict = (
        "**The >= 0.95 target is met**"
        if figures["pair_ratio"] >= 0.95
        else "**The >= 0.95 target is not met**"
    )
    # THEN both pages quote every figure, the run's load and the verdict the median gives
    for page in ("predictions.md", "performance.md"):
        text = (repo_root / "docs" / page).read_text().replace("\n", " ")
        assert [phrase for phrase in quoted if phrase not in text] == [], page
    assert verdict in (repo_root / "docs" / "predictions.md").read_text().replace("\n", " ")
