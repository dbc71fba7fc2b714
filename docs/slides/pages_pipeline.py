"""The PySpark chain, the PCA, the demonstration, the bench."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt

from slides.drawing import Deck, bullets, require_within, table
from slides.sources import Figures, fmt_rate, fmt_ratio
from slides.style import ACCENT, GREEN, GREY, INK, LEFT, PAGE, RIGHT, SMALL_PT, TABLE_PT

CODE_PT = 11.5  # captured terminal output: the demo's summary lines are ~110 characters wide
CODE_SPACING = 1.2


def slide_stream(deck: Deck, figures: Figures) -> None:
    figure = deck.page("The PySpark processing chain", "streaming_job/, docs/stream.md")
    bullets(
        figure,
        [
            "readStream the manifests (JSON lines, one object per batch of uploads, explicit schema); "
            "maxFilesPerTrigger bounds a micro-batch.",
            "mapInPandas: read the clean images (boto3 / file) and decode + resize them in a thread pool.",
            "Featurize with the ImageNet MobileNetV2 (int8, LiteRT; pooled 1280 features): the driver "
            "loads it once and broadcasts its spec (the 2.8 MB int8 .tflite bytes); each Python worker "
            "builds its interpreter once and reuses it across tasks and batches (spark.python.worker.reuse).",
            "Project on the PCA (mean + k components, broadcast too) with numpy: the features row holds "
            "the k scores and the reconstruction residual.",
            "foreachBatch: the driver appends to the Iceberg tables fruits.features and fruits.errors; "
            "each commit carries the query and batch id: a re-run batch finds it and skips (exactly once).",
            "Checkpoint in daily epochs (size and restart flat over 30 simulated days); a heartbeat every "
            "60 s; fruits status tells busy, hung, dead, stopped and lagging apart; alarms fire on each.",
        ],
        top=0.83,
    )


def slide_pca(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        "PCA: fitted once, applied in every batch",
        "streaming_job/featurizer/pca.py, notebooks/local_pipeline.ipynb",
    )
    bullets(
        figure,
        [
            "fruits fit-pca featurizes a sample of clean images with the same broadcast featurizer.",
            "Spark ML centres the vectors and computes their covariance (distributed); numpy's eigh gives "
            "exact, deterministic components.",
            "k = the fewest components reaching 95 % of the variance (or a fixed --k).",
            "Saved as a Spark ML PipelineModel + pca.json; the stream refuses a PCA fitted on another "
            "featurizer version.",
            "Why: 1,280 floats per image shrink to k scores (smaller Parquet, faster models); the residual "
            "flags images unlike the sample.",
        ],
        top=0.83,
        right=0.51,
        size=16,
        gap=0.3,
    )
    notebook = figures.notebook
    if notebook.scatter_png:
        axis = figure.add_axes((0.525, 0.22, 0.46, 0.64))
        axis.imshow(plt.imread(io.BytesIO(notebook.scatter_png), format="png"))
        axis.set_axis_off()
    demo = figures.demo
    if demo:
        figure.text(
            0.755,
            0.205,
            f"fruits demo and the notebook, {demo['featurized']} clean images:\n"
            f"{figures.pca_headline} of the variance, PC1 {demo['pc1_share'] * 100:.1f} %,\n"
            f"5-fold linear probe accuracy {demo['linear_probe_accuracy']:.3f}",
            fontsize=TABLE_PT,
            ha="center",
            va="top",
            color=GREY,
        )


def slide_demo(deck: Deck, figures: Figures) -> None:
    """Real output of `fruits demo`, `fruits status` and a read-back, captured by `make demo-record`."""
    figure = deck.page(
        "Demonstration: demo, status, table read back",
        "docs/data/*.txt (make demo-record)",
    )
    captured = figures.captured
    blocks = [
        _demo_lines(captured["demo"]),
        [line for line in captured["status"].splitlines() if line.strip().startswith(STATUS_LINES_SHOWN)],
        captured["readback"].splitlines()[:6],
    ]
    line_height = CODE_PT * CODE_SPACING / (PAGE[1] * 72)
    y = 0.85
    for lines in blocks:
        lines = lines or ["(not captured: run make demo-record)"]
        label = figure.text(
            LEFT,
            y,
            "\n".join(line.rstrip() for line in lines),
            fontsize=CODE_PT,
            family="DejaVu Sans Mono",
            va="top",
            color=INK,
            linespacing=CODE_SPACING,
        )
        require_within(figure, label, LEFT, RIGHT, lines[0])
        y -= line_height * len(lines) + 0.03


# `fruits status` lines shown (the command, its title, the state, the last batch, the totals).
STATUS_LINES_SHOWN = ("$", "Fruits", "health", "last batch", "backlog", "errors", "totals")
# Summary lines left out of the slide (the full output is in docs/data/demo-output.txt).
DEMO_LINES_LEFT_OUT = ("model ", "plots ")


def _demo_lines(output: str, width: int = 110) -> list[str]:
    """The demo's summary as shown: the output table's path shortened, long lines wrapped."""
    lines = []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(DEMO_LINES_LEFT_OUT):
            continue
        if stripped.startswith("output ") and " at " in line:
            line = line.split(" at ")[0] + " (Iceberg, in <lake>/features/)"
        while len(line) > width:
            # wrap after a " + " (the timing line) or else after the last word that fits
            separator = " + " if " + " in line[:width] else " "
            cut = line[:width].rindex(separator) + len(separator)
            lines.append(line[:cut].rstrip())
            line = " " * 21 + line[cut:]
        lines.append(line)
    return lines


def slide_bench(deck: Deck, figures: Figures) -> None:
    bench = figures.bench
    figure = deck.page("Throughput and latency (fruits bench)", figures.bench_source)
    runtimes = bench.get("runtimes", {})
    names = sorted(runtimes)
    modes = [("alone", "featurizer alone"), ("stream", "stream, steady"), ("batch_backfill", "backfill")]
    axis = figure.add_axes((0.07, 0.2, 0.42, 0.58))
    width = 0.8 / len(modes)
    colours = ["#8fbc8f", GREEN, ACCENT]
    for index, (mode, label) in enumerate(modes):
        values = []
        for name in names:
            block = runtimes[name].get(mode) or {}
            values.append(block.get("steady_images_per_s", block.get("images_per_s")) or 0.0)
        if not any(values):
            continue
        positions = [i + (index - 1) * width for i in range(len(names))]
        bars = axis.bar(positions, values, width, label=label, color=colours[index])
        axis.bar_label(bars, labels=[fmt_rate(v) if v else "" for v in values], fontsize=SMALL_PT, padding=2)
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("images / s")
    axis.set_title(f"MobileNetV2, {bench.get('config', {}).get('input_size', '?')} px input")
    axis.legend(loc="upper left", frameon=False)
    axis.spines[["top", "right"]].set_visible(False)
    axis.margins(y=0.15)
    config, machine = bench.get("config", {}), bench.get("machine", {})
    rows = []
    for name in names:
        stream = runtimes[name].get("stream") or {}
        run = (stream.get("runs") or [{}])[0]
        durations = [batch["duration_ms"] for batch in run.get("batches", [])[1:]]
        median = sorted(durations)[len(durations) // 2] / 1000 if durations else None
        rows.append(
            [
                name,
                fmt_rate(stream.get("steady_images_per_s")),
                "n/a" if stream.get("first_batch_end_s") is None else f"{stream['first_batch_end_s']:.1f} s",
                "n/a" if median is None else f"{median:.1f} s",
            ]
        )
    bottom = table(
        figure,
        ["runtime", "images/s", "1st batch", "batch"],
        rows,
        columns=[0.54, 0.66, 0.77, 0.87],
        top=0.8,
        aligns=["left", "right", "right", "right"],
    )
    ratio = figures.stream_ratio
    medians = figures.bench_repeat.get("runtimes", {}).get("litert", {})
    repeated = (
        [
            f"LiteRT, median of {figures.bench_repeat['config']['repeat']} interleaved runs "
            "(bench_repeat.json): stream / alone "
            f"{medians['ratio_stream_vs_alone']:.2f} "
            f"(runs {_bounds(medians['ratio_stream_vs_alone_spread'])}), "
            f"with / without scoring {medians['ratio_scoring']:.2f} "
            f"(runs {_bounds(medians['ratio_scoring_spread'])}) between processes"
            + (
                f"; paired in one stream {figures.scoring_pairs['pair_ratio']:.3f}."
                if figures.scoring_pairs
                else "."
            )
        ]
        if medians.get("ratio_scoring_spread")
        else []
    )
    bullets(
        figure,
        [
            f"LiteRT stream / Keras stream: {fmt_ratio(ratio)} x",
            f"{config.get('repeat', '?')} run of {config.get('n', '?')} images, "
            f"{config.get('max_files_per_trigger', '?')} per micro-batch; 'batch' = steady micro-batch "
            "duration (latency bound).",
            *repeated,
            f"{machine.get('cores', '?')} shared cores ({machine.get('cpu', '?')}), load "
            f"{(machine.get('load_average_before') or ['?'])[0]}: a laptop-class floor, not EMR.",
        ],
        top=bottom - 0.04,
        left=0.54,
        size=15,
        gap=0.2,
    )


def _bounds(spread: list[float]) -> str:
    return f"{spread[0]:.2f}-{spread[1]:.2f}"


def slide_predictions(deck: Deck, figures: Figures) -> None:
    """The classifier trained from the features table, its scoring in the stream, the app model, the alarm."""
    from streaming_job.scoring.classifier import LOW_CONFIDENCE

    figure = deck.page(
        "Predictions: a classifier trained from the lake",
        "fruits_classifier/, docs/predictions.md, docs/data/*.json",
    )
    demo, full = figures.demo, figures.predictions
    items = [
        "fruits classifier train: Keras on the k PCA scores of labelled rows, 1 in 5 held out by a hash "
        "of image_id; versioned, never overwritten.",
    ]
    if demo.get("held_out_accuracy") is not None:
        items.append(
            f"- demo: held-out accuracy {demo['held_out_accuracy']:.3f}, stream "
            f"{demo['prediction_accuracy']:.3f} on {demo['prediction_images']} unseen uploads"
        )
    if full:
        items.append(
            f"- {full['images']:,} images: {full['held_out_accuracy']:.3f} on {full['held_out_rows']} "
            f"held out, {full['prediction_accuracy']:.3f} on {full['unseen_images']} unseen"
        )
    paired = figures.scoring_pairs
    cost = figures.scoring_cost
    items.append(
        "The stream scores each row next to the PCA; a new classifier applies from the next batch."
        + (
            f" A worker scoring every row keeps {cost['worker_ratio_with_scoring']:.4f} of its "
            f"throughput ({cost['scoring_ms_per_image']} of "
            f"{cost['featurize_ms_per_image']:.1f} ms per image)."
            if cost
            else ""
        )
        + (
            f" Whole stream: scored / unscored batches {paired['pair_ratio']:.3f} (median of "
            f"{paired['pairs']} adjacent pairs in one stream, {_bounds(paired['pair_ratio_spread'])}; "
            "target >= 0.95)."
            if paired
            else ""
        )
    )
    if demo.get("model_bytes"):
        app = (
            f"App model: one int8 .tflite, {demo['model_bytes']['app_model'] / 1e6:.2f} MB, "
            f"agrees {demo['app_agreement'] * 100:.0f} % with the stream"
        )
        if full:
            app += f", {full['app_latency_ms_p50']:.1f} ms per image (LiteRT, 1 thread)"
        items.append(app + "; GET /model: short-lived URL.")
    items.append(
        f"Drift alarm: confidence < {LOW_CONFIDENCE} + label disagreements > "
        f"{figures.emr.get('PredictionDriftPercent', '?')} % of an hour's manifests."
    )
    bullets(figure, items, top=0.84, right=0.6, size=15, gap=0.25)
    confusion = figures.notebook.confusion_png
    if confusion:
        axis = figure.add_axes((0.615, 0.14, 0.37, 0.66))
        axis.imshow(plt.imread(io.BytesIO(confusion), format="png"))
        axis.set_axis_off()
        figure.text(
            0.8,
            0.13,
            "held-out confusion matrix (notebook, step 10)",
            fontsize=SMALL_PT,
            ha="center",
            va="top",
            color=GREY,
        )
