"""Build docs/presentation.pdf: the final demonstration's slides, drawn with matplotlib.

Every figure on the slides comes from the repository at build time, never typed in:
- the key layout and record fields from `fruits_core.contracts`;
- the EMR defaults from `infra/emr-cluster.yaml` (its Parameters' `Default:` values);
- throughput and latency from a `fruits bench --json` report (default `docs/data/bench.json`);
- the cost table from `fruits cost --images-per-day N --json` at three scales (run here, offline);
- the PCA scatter, k and probe accuracy from the committed, executed notebook (run `make notebook` first).

Offline and self-contained: matplotlib's bundled DejaVu fonts, embedded as TrueType
(`pdf.fonttype = 42`). Every text must lie inside its page: the build fails otherwise.

    python docs/slides/build.py [--out docs/presentation.pdf] [--bench docs/data/bench.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fruits_core import contracts  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "presentation.pdf"
DEFAULT_BENCH = REPO / "docs" / "data" / "bench.json"
EMR_TEMPLATE = REPO / "infra" / "emr-cluster.yaml"
NOTEBOOK = REPO / "notebooks" / "local_pipeline.ipynb"
COST_SCALES = (10_000, 1_000_000, 100_000_000)
COST_REGION = "eu-west-3"

# Page and style: 16:9 at 13.33 x 7.5 in; body >= 16 pt, tables >= 14 pt.
PAGE = (13.333, 7.5)
GREEN, LIGHT, INK, GREY, ACCENT = "#2e5e2e", "#e8f1e8", "#1d1d1d", "#6b6b6b", "#c0622a"
TITLE_PT, BODY_PT, TABLE_PT, SMALL_PT = 28, 17, 14, 12
LINE = 0.052  # one body line, in figure height
LEFT, RIGHT = 0.05, 0.95
# Texts that overflow their cell or the page: the build fails listing them all.
PROBLEMS: list[str] = []

matplotlib.rcParams.update(
    {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "font.family": "DejaVu Sans",
        "font.size": BODY_PT,
        "axes.titlesize": BODY_PT,
        "axes.labelsize": TABLE_PT,
        "xtick.labelsize": TABLE_PT,
        "ytick.labelsize": TABLE_PT,
        "legend.fontsize": TABLE_PT,
    }
)


# --- Figures from the repository ------------------------------------------------


def load_bench(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def run_cost(images_per_day: int, region: str = COST_REGION) -> dict:
    """`fruits cost --images-per-day N --region R --json`, run as the command line runs it."""
    command = [
        sys.executable,
        "-m",
        "fruits_cli.main",
        "cost",
        "--images-per-day",
        str(images_per_day),
        "--region",
        region,
        "--json",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# Components of `fruits cost`, grouped as in docs/operations.md ("Three scales").
COST_GROUPS = (
    ("Lambda (requests + arm64 compute)", ("Lambda",)),
    ("SQS", ("SQS",)),
    ("S3 requests", ("S3 PUT", "S3 GET", "S3 LIST")),
    ("S3 storage (30-day lake)", ("S3 storage",)),
    ("KMS", ("KMS",)),
    ("CloudWatch + X-Ray", ("CloudWatch", "X-Ray")),
    ("EMR nodes + EBS + NAT", ("EMR", "EBS", "NAT")),
)


def group_cost(estimate: dict) -> dict[str, float]:
    grouped = {name: 0.0 for name, _ in COST_GROUPS}
    for item in estimate["items"]:
        group = next((name for name, prefixes in COST_GROUPS if item["component"].startswith(prefixes)), None)
        if group is None:
            raise ValueError(f"cost component {item['component']!r} fits no group of the slide")
        grouped[group] += item["usd"]
    return grouped


def emr_defaults(template: Path = EMR_TEMPLATE) -> dict[str, str]:
    """Parameter -> Default of the EMR template (a line scan: its !Ref tags need no YAML loader)."""
    defaults: dict[str, str] = {}
    in_parameters, current = False, None
    for line in template.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_parameters = line.startswith("Parameters:")
            continue
        if not in_parameters:
            continue
        if match := re.match(r"^  ([A-Za-z0-9]+):\s*$", line):
            current = match.group(1)
        elif (match := re.match(r"^    Default:\s*(.*)$", line)) and current:
            defaults[current] = match.group(1).strip().strip('"')
    return defaults


def fmt_usd(value: float) -> str:
    return f"{value:,.2f}"


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class NotebookFigures:
    """What the committed, executed notebook shows: its 2-D scatter and its summary lines."""

    scatter_png: bytes | None
    summary: dict[str, str]


def notebook_figures(path: Path = NOTEBOOK) -> NotebookFigures:
    """The last PNG output (the scatter) and the last cell's `name  value` lines of the executed notebook."""
    if not path.exists():
        return NotebookFigures(None, {})
    cells = [
        cell for cell in json.loads(path.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"
    ]
    outputs = [output for cell in cells for output in cell.get("outputs", [])]
    images = [output["data"]["image/png"] for output in outputs if "image/png" in output.get("data", {})]
    last = "".join(cells[-1].get("outputs", [{}])[-1].get("text", "")) if cells else ""
    summary = dict(line.rsplit(maxsplit=1) for line in last.strip().splitlines() if " " in line.strip())
    return NotebookFigures(base64.b64decode("".join(images[-1])) if images else None, summary)


@dataclass(frozen=True)
class Figures:
    bench: dict
    bench_source: str
    costs: dict[int, dict]
    emr: dict[str, str]
    notebook: NotebookFigures

    @property
    def stream_ratio(self) -> float | None:
        return self.bench.get("ratio_litert_stream_vs_keras_stream")

    def key_figures(self) -> list[str]:
        """Strings the PDF must quote (the test checks they are in its text)."""
        figures = [fmt_usd(estimate["total_usd"]) for estimate in self.costs.values()]
        if self.stream_ratio is not None:
            figures.append(fmt_ratio(self.stream_ratio))
        for runtime in self.bench.get("runtimes", {}).values():
            steady = runtime.get("stream", {}).get("steady_images_per_s")
            if steady is not None:
                figures.append(fmt_rate(steady))
        return figures


def gather(bench_path: Path) -> Figures:
    try:
        source = str(bench_path.resolve().relative_to(REPO))
    except ValueError:
        source = str(bench_path)
    return Figures(
        bench=load_bench(bench_path),
        bench_source=source,
        costs={scale: run_cost(scale) for scale in COST_SCALES},
        emr=emr_defaults(),
        notebook=notebook_figures(),
    )


class LayoutError(ValueError):
    """Some text overflows its table cell, box or page."""


# --- Drawing helpers ----------------------------------------------------------------


class Deck:
    def __init__(self, total: int) -> None:
        self.total = total
        self.pages: list[plt.Figure] = []

    def page(self, title: str, source: str = "") -> plt.Figure:
        figure = plt.figure(figsize=PAGE)
        figure.patches.append(
            FancyBboxPatch(
                (0, 0.88), 1, 0.12, boxstyle="square,pad=0", transform=figure.transFigure, color=GREEN
            )
        )
        figure.text(LEFT, 0.94, title, fontsize=TITLE_PT, color="white", weight="bold", va="center")
        number = len(self.pages) + 1
        footer = f"Fruits! image pipeline  ·  {number} / {self.total}"
        figure.text(LEFT, 0.025, footer, fontsize=SMALL_PT, color=GREY, va="bottom")
        if source:
            figure.text(
                RIGHT, 0.025, f"source: {source}", fontsize=SMALL_PT, color=GREY, va="bottom", ha="right"
            )
        self.pages.append(figure)
        return figure


def text_width(figure, text: str, size: float, weight: str = "normal") -> float:
    """The width of one line of text, as a fraction of the page width."""
    renderer = figure.canvas.get_renderer()
    prop = FontProperties(family="DejaVu Sans", size=size, weight=weight)
    width, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)
    return width / (figure.get_figwidth() * figure.dpi)


def wrap(figure, text: str, size: float, width: float) -> list[str]:
    """Greedy word wrap by measured width (fraction of the page)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and text_width(figure, candidate, size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines or [""]


def bullets(
    figure,
    items: list[str],
    top: float = 0.82,
    left: float = LEFT,
    right: float = RIGHT,
    size: int = BODY_PT,
    gap: float = 0.35,
) -> float:
    """Draw wrapped bullets (a leading '- ' marks a sub-bullet); return the y below the last one."""
    y = top
    line = LINE * size / BODY_PT
    for item in items:
        sub = item.startswith("- ")
        text = item[2:] if sub else item
        indent = 0.03 if sub else 0.0
        x = left + indent + 0.022
        lines = wrap(figure, text, size, right - x)
        marker = "\u2013" if sub else "\u2022"
        figure.text(left + indent, y, marker, fontsize=size, color=GREY if sub else GREEN, va="top")
        for index, chunk in enumerate(lines):
            figure.text(x, y - index * line, chunk, fontsize=size, color=INK, va="top")
        y -= line * (len(lines) + gap)
    return y


def table(
    figure,
    header: list[str],
    rows: list[list[str]],
    columns: list[float],
    top: float,
    size: int = TABLE_PT,
    aligns: list[str] | None = None,
    row_h: float | None = None,
    bold_last: bool = False,
    right: float = RIGHT,
) -> float:
    """A ruled table; `columns` are the left edges (figure x), the last one ends at RIGHT."""
    row_h = row_h or 0.048 * size / TABLE_PT
    aligns = aligns or ["left"] * len(header)
    edges = [*columns, right]
    y = top
    for row_index, row in enumerate([header, *rows]):
        is_header = row_index == 0
        lines = max(len(cell.split("\n")) for cell in row)
        height = row_h * (1 + 0.75 * (lines - 1))
        if is_header:
            figure.patches.append(
                FancyBboxPatch(
                    (edges[0] - 0.005, y - height),
                    edges[-1] - edges[0] + 0.01,
                    height,
                    boxstyle="square,pad=0",
                    transform=figure.transFigure,
                    color=LIGHT,
                )
            )
        for cell, (x0, x1), align in zip(row, itertools.pairwise(edges), aligns, strict=True):
            x = x0 + 0.005 if align == "left" else x1 - 0.01
            weight = "bold" if is_header or (bold_last and row_index == len(rows)) else "normal"
            text = figure.text(
                x,
                y - height / 2,
                cell,
                fontsize=size,
                va="center",
                ha=align,
                weight=weight,
                color=INK,
                linespacing=1.15,
            )
            _require_within(figure, text, x0, x1, cell)
        y -= height
        figure.add_artist(
            plt.Line2D(
                [edges[0], edges[-1]], [y, y], transform=figure.transFigure, color="#b8c8b8", linewidth=0.8
            )
        )
    return y


def _require_within(figure, text, x0: float, x1: float, what: str) -> None:
    renderer = figure.canvas.get_renderer()
    box = text.get_window_extent(renderer).transformed(figure.transFigure.inverted())
    if box.x0 < x0 - 0.002 or box.x1 > x1 + 0.002:
        PROBLEMS.append(f"{what!r} overflows its cell ({box.x0:.3f}-{box.x1:.3f} vs {x0:.3f}-{x1:.3f})")


def box(
    figure,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str,
    face: str = LIGHT,
    edge: str = GREEN,
    size: int = TABLE_PT,
    weight: str = "normal",
) -> tuple[float, float, float, float]:
    figure.patches.append(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.004,rounding_size=0.012",
            transform=figure.transFigure,
            facecolor=face,
            edgecolor=edge,
            linewidth=1.6,
        )
    )
    label = figure.text(
        x + w / 2,
        y + h / 2,
        text,
        fontsize=size,
        ha="center",
        va="center",
        color=INK,
        weight=weight,
        linespacing=1.2,
    )
    _require_within(figure, label, x, x + w, text.replace("\n", " "))
    return (x, y, w, h)


def arrow(
    figure,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    color: str = GREEN,
    style: str = "-|>",
    dashed: bool = False,
    label_offset=(0.0, 0.018),
) -> None:
    figure.patches.append(
        FancyArrowPatch(
            start,
            end,
            transform=figure.transFigure,
            arrowstyle=style,
            mutation_scale=18,
            color=color,
            linewidth=1.8,
            linestyle="--" if dashed else "-",
        )
    )
    if label:
        figure.text(
            (start[0] + end[0]) / 2 + label_offset[0],
            (start[1] + end[1]) / 2 + label_offset[1],
            label,
            fontsize=SMALL_PT,
            ha="center",
            va="bottom",
            color=GREY,
        )


def check_page(figure, number: int) -> None:
    """Every text must lie inside the page (clipped text fails the build)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for text in figure.findobj(matplotlib.text.Text):
        if not text.get_text().strip() or not text.get_visible():
            continue
        box_ = text.get_window_extent(renderer).transformed(figure.transFigure.inverted())
        if box_.x0 < 0 or box_.y0 < 0 or box_.x1 > 1 or box_.y1 > 1:
            PROBLEMS.append(f"slide {number}: {text.get_text()[:40]!r} leaves the page")


# --- The slides --------------------------------------------------------------------


def slide_title(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Fruits! image pipeline")
    figure.text(LEFT, 0.74, "From a farmer's photo to a feature row in seconds,", fontsize=26, color=INK)
    figure.text(LEFT, 0.67, "with nothing personal kept that the models do not need.", fontsize=26, color=INK)
    bullets(
        figure,
        [
            "Ingest on AWS Lambda (validate, anonymize, quarantine), featurize on Spark Structured "
            "Streaming on EMR (MobileNetV2 broadcast + PCA), EU regions only.",
            "Every figure in these slides is produced by the project's own commands: "
            "fruits bench, fruits cost, the contracts module, the EMR template.",
            "Du cliché de l'agriculteur à un vecteur de caractéristiques en quelques secondes, "
            "sans conserver de donnée personnelle inutile (RGPD, régions UE).",
        ],
        top=0.54,
    )
    figure.text(
        LEFT,
        0.12,
        "Final demonstration · slides built by docs/slides/build.py (make slides)",
        fontsize=TABLE_PT,
        color=GREY,
    )


def slide_deliverables(deck: Deck, figures: Figures) -> None:
    figure = deck.page("The brief and what was delivered")
    rows = [
        [
            "PySpark pipeline on EMR,\nmodel weights broadcast",
            "Structured Streaming job, featurizer\nspec broadcast, built once per worker",
            "streaming_job/, infra/emr-cluster.yaml",
        ],
        [
            "Documented cloud architecture",
            "SAM ingest stack + EMR stack,\nEU-only, KMS, least privilege",
            "template.yaml, docs/operations.md",
        ],
        [
            "Local PySpark notebook,\ncomplete PCA pipeline",
            "Executed walk-through on the\nbundled real images",
            "notebooks/local_pipeline.ipynb",
        ],
        [
            "PDF presentation",
            "These slides, rebuilt by make slides\nfrom the project's own figures",
            "docs/presentation.pdf",
        ],
    ]
    bottom = table(
        figure, ["Asked for", "Delivered", "Where"], rows, columns=[LEFT, 0.34, 0.66], top=0.82, row_h=0.066
    )
    bullets(
        figure,
        [
            "make demo runs the whole pipeline offline on real images; make test proves it "
            "(CI runs exactly that)."
        ],
        top=bottom - 0.05,
    )


def slide_architecture(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        "Architecture on AWS (EU region, eu-west-3 by default)",
        "README.md, template.yaml, infra/emr-cluster.yaml",
    )
    # row 1: the ingest side
    app = box(figure, 0.03, 0.66, 0.11, 0.12, "Mobile app\nphoto + meta", face="white")
    up = box(figure, 0.19, 0.66, 0.14, 0.12, "S3 uploads\nuploads/*.jpg\n1-day expiry")
    sqs = box(figure, 0.39, 0.66, 0.11, 0.12, "SQS\ningest queue")
    lam = box(
        figure,
        0.57,
        0.64,
        0.23,
        0.16,
        "Lambda ingest\n(Powertools)\nvalidate · anonymize\nre-encode · quarantine",
        weight="bold",
    )
    dlq = box(figure, 0.39, 0.47, 0.11, 0.09, "DLQ\n(alarm)", face="#fbeee6", edge=ACCENT)
    ssm = box(figure, 0.86, 0.66, 0.11, 0.12, "SSM\npseudonym\nkey", face="white")
    arrow(figure, (app[0] + app[2], 0.72), (up[0], 0.72), "PUT")
    arrow(figure, (up[0] + up[2], 0.72), (sqs[0], 0.72), "event")
    arrow(figure, (sqs[0] + sqs[2], 0.72), (lam[0], 0.72), "batch")
    arrow(
        figure,
        (0.445, 0.66),
        (0.445, dlq[1] + dlq[3]),
        "5 receives",
        color=ACCENT,
        label_offset=(0.05, -0.01),
    )
    arrow(figure, (ssm[0], 0.72), (lam[0] + lam[2], 0.72), "key", dashed=True, style="-|>")
    # row 2: the lake
    figure.text(0.57, 0.545, "S3 lake (SSE-KMS)", fontsize=TABLE_PT, color=GREEN, weight="bold")
    clean = box(figure, 0.57, 0.40, 0.12, 0.11, "clean/\nJPEG")
    man = box(figure, 0.71, 0.40, 0.12, 0.11, "manifests/\nJSON v1")
    quar = box(figure, 0.85, 0.40, 0.12, 0.11, "quarantine/\nreason", face="#fbeee6", edge=ACCENT)
    for source_x, target in ((0.62, clean), (0.72, man), (0.78, quar)):
        arrow(figure, (source_x, lam[1]), (target[0] + target[2] / 2, target[1] + target[3]))
    # row 3: the stream
    spark = box(
        figure,
        0.20,
        0.10,
        0.40,
        0.21,
        "Spark Structured Streaming on EMR\nreadStream manifests/ -> "
        "mapInPandas:\nread + decode · MobileNetV2 (broadcast)\n· PCA projection -> foreachBatch",
        weight="bold",
    )
    feats = box(figure, 0.66, 0.15, 0.14, 0.12, "fruits.features\nIceberg by day")
    errs = box(figure, 0.83, 0.15, 0.14, 0.12, "errors/, status/,\ncheckpoints/", face="white")
    arrow(figure, (man[0] + man[2] / 2, man[1]), (0.56, spark[1] + spark[3]))
    figure.text(0.66, 0.345, "new manifests", fontsize=SMALL_PT, color=GREY, va="center")
    arrow(
        figure,
        (clean[0] + 0.03, clean[1]),
        (0.48, spark[1] + spark[3]),
        "images",
        dashed=True,
        label_offset=(-0.04, -0.01),
    )
    arrow(figure, (spark[0] + spark[2], 0.21), (feats[0], 0.21))
    del errs
    # cross-cutting services
    box(
        figure,
        0.03,
        0.10,
        0.14,
        0.45,
        "Across all:\n\nKMS key:\nbuckets, queues,\nlogs, EMR\n\n"
        "CloudWatch:\nEMF, alarms,\ndashboards\n\nIAM: one role\nper component",
        face="white",
    )


def slide_data_path(deck: Deck, figures: Figures) -> None:
    figure = deck.page("The data path and its contracts", "fruits_core/contracts.py")
    c = contracts
    rows = [
        [c.UPLOADS_PREFIX + "<name>.jpg|png|webp", "mobile app", "ingest Lambda", "raw upload, 1 day"],
        [c.clean_image_key("<dt>", "<image_id>"), "ingest Lambda", "stream", "re-encoded pixels, no EXIF"],
        [
            c.manifest_key("<dt>", "<image_id>"),
            "ingest Lambda",
            "stream",
            f"manifest v{c.MANIFEST_SCHEMA_VERSION}",
        ],
        [c.quarantine_key("<dt>", "<image_id>"), "ingest Lambda", "operators", "reason code, 30 days"],
        [
            c.FEATURES_PREFIX + "features-<uuid>/ (Iceberg)",
            "stream",
            "data consumers",
            f"table fruits.features v{c.FEATURES_SCHEMA_VERSION}",
        ],
        [c.ERRORS_PREFIX + " (Iceberg)", "stream", "operators", "fruits.errors: unfeaturizable"],
        [c.FEATURIZER_KEY + ", " + c.PCA_KEY + "/", "fruits model / fit-pca", "stream", "model artifacts"],
        [
            c.CHECKPOINTS_PREFIX + ", " + c.STATUS_PREFIX,
            "stream",
            "stream, fruits status",
            "exactly once, health",
        ],
    ]
    bottom = table(
        figure,
        ["Key (lake bucket)", "Written by", "Read by", "What"],
        rows,
        columns=[LEFT, 0.41, 0.575, 0.735],
        top=0.84,
        row_h=0.055,
    )
    bullets(
        figure,
        [
            "image_id = SHA-256(bucket/key#version)[:32]: a re-delivered event rewrites the same keys, so "
            "duplicates are impossible by construction; the stream's sink commits each batch once per table.",
        ],
        top=bottom - 0.04,
        size=16,
    )


def _fields(fields: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _ in fields)


def slide_records(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        f"Records: manifest v1 and features v{contracts.FEATURES_SCHEMA_VERSION}", "fruits_core/contracts.py"
    )
    c = contracts
    y = 0.82
    for title, fields, note in (
        (
            f"Manifest v{c.MANIFEST_SCHEMA_VERSION} (JSON, one per accepted image)",
            c.MANIFEST_FIELDS,
            "written by the Lambda; the stream's input (explicit schema, bad rows go to errors/)",
        ),
        (
            f"Features v{c.FEATURES_SCHEMA_VERSION} (Iceberg table fruits.features, by day(uploaded_at))",
            c.FEATURES_FIELDS,
            "features = the k PCA scores; pca_residual = reconstruction error (out-of-distribution score)",
        ),
        (
            f"Quarantine record v{c.QUARANTINE_SCHEMA_VERSION} (JSON)",
            c.QUARANTINE_FIELDS,
            "reasons: " + ", ".join(reason.value for reason in c.QuarantineReason),
        ),
    ):
        figure.text(LEFT, y, title, fontsize=BODY_PT, weight="bold", color=GREEN, va="top")
        y = bullets(figure, [_fields(fields), "- " + note], top=y - LINE * 1.05, size=15, gap=0.15)
        y -= 0.025


def slide_anonymization(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        "Anonymization in the ingest Lambda", "docs/gdpr.md, lambdas/ingest/fruits_ingest/anonymize.py"
    )
    c = contracts
    rows = [
        [c.META_USER_ID, "pseudonymised", "subject_id = HMAC-SHA256(SSM key, user id)"],
        [
            c.META_LAT + " / " + c.META_LON,
            "coarsened",
            f"region = geohash precision {c.GEOHASH_PRECISION} (~39 x 20 km)",
        ],
        [c.META_CAPTURED_AT, "coarsened", "captured_hour = UTC, truncated to the hour"],
        [c.META_LABEL, "vocabulary", "a known fruit (any script) -> slug; anything else null"],
        [c.META_APP_VERSION, "kept", "app_version"],
        [c.META_DEVICE_ID + ", file name, key, IP", "dropped", "never copied to any record, log or metric"],
        ["EXIF (GPS, serial, time), ICC, XMP", "dropped", "clean JPEG re-encoded from decoded pixels"],
        ["raw upload", "deleted", "uploads bucket expires after 1 day"],
    ]
    bottom = table(
        figure,
        ["Upload metadata (x-amz-meta-*)", "Fate", "In the manifest / features"],
        rows,
        columns=[LEFT, 0.40, 0.56],
        top=0.84,
        row_h=0.056,
    )
    bullets(
        figure,
        [
            "Tests search every log line, record and Parquet file for the raw user id, device id, "
            "coordinates, capture time and file name: none may appear."
        ],
        top=bottom - 0.04,
        size=16,
    )


def slide_stream(deck: Deck, figures: Figures) -> None:
    figure = deck.page("The PySpark processing chain", "streaming_job/, docs/stream.md")
    bullets(
        figure,
        [
            "readStream the manifests (one JSON object per file, parsed with an explicit schema); "
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
        "PCA: fitted once, applied in every batch", "streaming_job/pca.py, notebooks/local_pipeline.ipynb"
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
        axis = figure.add_axes((0.525, 0.16, 0.46, 0.7))
        axis.imshow(plt.imread(io.BytesIO(notebook.scatter_png), format="png"))
        axis.set_axis_off()
        summary = notebook.summary
        figure.text(
            0.755,
            0.145,
            f"notebook, {summary.get('featurized', '?')} images: k = {summary.get('k', '?')} "
            f"({summary.get('explained variance', '?')} of the variance),\n"
            f"linear probe accuracy {summary.get('linear probe accuracy', '?')}",
            fontsize=TABLE_PT,
            ha="center",
            va="top",
            color=GREY,
        )


def slide_emr(deck: Deck, figures: Figures) -> None:
    figure = deck.page("EMR cluster and IAM roles", "infra/emr-cluster.yaml, docs/operations.md")
    emr = figures.emr
    left_bottom = table(
        figure,
        ["Node group", "Default (template)"],
        [
            ["primary (on-demand)", emr.get("PrimaryInstanceType", "?")],
            [
                "core (on-demand,\nholds the driver)",
                f"{emr.get('CoreOnDemandUnits', '?')} x {emr.get('CoreInstanceType', '?')}",
            ],
            [
                "task (spot)",
                f"{emr.get('TaskInstanceTypeA', '?')} / {emr.get('TaskInstanceTypeB', '?')} /\n"
                f"{emr.get('TaskInstanceTypeC', '?')}",
            ],
            [
                "managed scaling",
                f"{emr.get('ScalingMinimumUnits', '?')} to {emr.get('ScalingMaximumUnits', '?')} nodes",
            ],
            ["release", "emr-spark-8.0.0 (Spark 4.0)"],
        ],
        columns=[LEFT, 0.25],
        top=0.84,
        row_h=0.058,
        right=0.47,
    )
    right_bottom = table(
        figure,
        ["Role", "Can read", "Can write"],
        [
            ["ingest\nLambda", "uploads/,\nSSM key", "clean/,\nmanifests/,\nquarantine/"],
            [
                "EMR\ninstance",
                "clean/, manifests/,\nmodels/, code/",
                "features/, errors/,\ncheckpoints/,\nstatus/",
            ],
            ["EMR\nservice", "AWS managed\nEMR policy v2", "PassRole on the\ninstance role"],
            ["data\nconsumers", "features/ only", "-"],
        ],
        columns=[0.51, 0.61, 0.78],
        top=0.84,
        row_h=0.05,
    )
    bullets(
        figure,
        [
            "The driver stays on on-demand core nodes (YARN node label CORE): a spot reclaim never kills it.",
            "Each step brings the job's Python environment (a venv-pack archive in S3): no PyPI at boot; "
            "IMDSv2 required; at-rest (KMS) and in-transit (TLS) encryption.",
        ],
        top=min(left_bottom, right_bottom) - 0.04,
        size=16,
    )


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
    bullets(
        figure,
        [
            f"LiteRT stream / Keras stream: {fmt_ratio(ratio)} x",
            f"{config.get('n', '?')} images per run, {config.get('max_files_per_trigger', '?')} per "
            f"micro-batch; 'batch' = steady micro-batch duration (latency bound).",
            f"{machine.get('cores', '?')} shared cores ({machine.get('cpu', '?')}), load "
            f"{(machine.get('load_average_before') or ['?'])[0]}: a laptop-class floor, not EMR.",
        ],
        top=bottom - 0.04,
        left=0.54,
        size=15,
        gap=0.2,
    )


def slide_cost(deck: Deck, figures: Figures) -> None:
    scales = list(figures.costs)
    first = figures.costs[scales[0]]
    figure = deck.page(
        f"Monthly cost, three scales ({first['region']}, {first['prices_as_of']})",
        "fruits cost --images-per-day N --json (operations/pricing_eu.json)",
    )
    grouped = {scale: group_cost(estimate) for scale, estimate in figures.costs.items()}
    rows = [[name, *(f"{grouped[scale][name]:,.0f}" for scale in scales)] for name, _ in COST_GROUPS]
    rows.append(["total (USD / month)", *(fmt_usd(figures.costs[scale]["total_usd"]) for scale in scales)])
    bottom = table(
        figure,
        ["USD / month", *(f"{scale:,}\nimages/day" for scale in scales)],
        rows,
        columns=[LEFT, 0.42, 0.60, 0.78],
        top=0.84,
        aligns=["left", "right", "right", "right"],
        row_h=0.047,
        bold_last=True,
    )
    fleets = []
    for scale in scales:
        fleet = figures.costs[scale]["fleet"]
        fleets.append(
            f"{scale:,}/day: task nodes up to {fleet['task_nodes_peak']}, "
            f"Lambda peak concurrency {fleet['lambda_peak_concurrency']:,.1f}"
        )
    bullets(
        figure,
        [
            "Small scale: the always-on cluster is most of the bill (a transient --available-now cluster "
            "a few times a day is cheaper). Large scale: S3 storage and requests dominate.",
            *("- " + line for line in fleets),
        ],
        top=bottom - 0.035,
        size=15,
        gap=0.15,
    )


def slide_gdpr(deck: Deck, figures: Figures) -> None:
    figure = deck.page("GDPR controls", "docs/gdpr.md")
    bullets(
        figure,
        [
            "EU only: both templates refuse any region outside the EU (EuRegionsOnly rule), and so does "
            "every fruits deploy command before it calls AWS.",
            "Minimisation and pseudonymisation at the door: the Lambda keeps a keyed pseudonym, a ~20 km "
            "geohash and the UTC hour; device id, file name, IP and EXIF never go further.",
            "Encryption: one customer managed KMS key (rotation on) for buckets, queues, topic, log groups "
            "and EMR disks; TLS-only bucket policies; EMR in-transit TLS.",
            "Least privilege: one IAM role per component, scoped to lake prefixes; "
            "consumers read features/ only.",
            "Retention: a lifecycle rule on every lake prefix (days as parameters, tested); table rows "
            "age out with fruits lake maintain (365 days).",
            "Art. 15 / 17: fruits subject export | erase finds the person under every key version: objects, "
            "table rows and unreferenced files deleted, a tombstone drops uploads in flight, an audit "
            "record without personal data; fruits audit-pii checks the lake.",
        ],
        top=0.83,
    )


def slide_choices(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Technology choices")
    table(
        figure,
        ["Choice", "Why"],
        [
            ["Lambda + SQS for ingest", "per-image work, scales to zero, retries + DLQ for free"],
            [
                "Spark Structured Streaming on EMR",
                "the brief's PySpark; seconds of latency; exactly once\n"
                "through checkpoints; same code for backfills (--available-now)",
            ],
            ["MobileNetV2 features, broadcast", "2.8 MB int8 model, CPU-friendly; built once per worker"],
            [
                "int8 MobileNetV2 on LiteRT",
                f"bench: {fmt_ratio(figures.stream_ratio)} x the Keras stream's throughput, same CPUs",
            ],
            ["PCA (Spark ML + numpy eigh)", "compact rows; deterministic refits; residual as OOD score"],
            [
                "JSON manifests + Iceberg tables",
                "simple contracts both halves share (fruits_core, fruits_lake)",
            ],
            ["SAM + CloudFormation, EU rule", "reviewable infrastructure, region guard in the template"],
        ],
        columns=[LEFT, 0.40],
        top=0.84,
        row_h=0.075,
    )


def slide_limits(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Limits and next steps")
    bullets(
        figure,
        [
            "Figures measured on a shared 2-core VM: re-run fruits bench on the target EMR instance type "
            "and feed its images/s to fruits cost (--images-per-vcpu-second).",
            "One JSON manifest per image costs ~3 S3 requests per image in the stream: group manifests or "
            "read the queue directly at 100 M images/day.",
            "Clean images are stored full size: downscale or move them to a cheaper storage class.",
            "The small-scale bill is the always-on cluster: a transient cluster on a schedule, or EMR "
            "Serverless, fits below ~100 k images/day.",
            "Feature quality: the probe on 100 bundled images is indicative only; validate on the full "
            "Fruits-360 set and track drift with pca_residual.",
            "pyiceberg rewrites the table metadata on every commit: snapshots are kept a day; a JVM "
            "Iceberg writer would lift that bound.",
        ],
        top=0.83,
    )


SLIDES = (
    slide_title,
    slide_deliverables,
    slide_architecture,
    slide_data_path,
    slide_records,
    slide_anonymization,
    slide_stream,
    slide_pca,
    slide_emr,
    slide_bench,
    slide_cost,
    slide_gdpr,
    slide_choices,
    slide_limits,
)


def build(out: Path = DEFAULT_OUT, bench: Path = DEFAULT_BENCH) -> Figures:
    figures = gather(bench)
    deck = Deck(total=len(SLIDES))
    PROBLEMS.clear()
    for draw in SLIDES:
        draw(deck, figures)
    for number, figure in enumerate(deck.pages, start=1):
        check_page(figure, number)
    if PROBLEMS:
        raise LayoutError("clipped text on the slides:\n" + "\n".join(PROBLEMS))
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "Title": "Fruits! image pipeline",
        "Subject": "Final demonstration",
        "CreationDate": None,
        "ModDate": None,
    }
    with PdfPages(out, metadata=metadata) as pdf:
        for figure in deck.pages:
            pdf.savefig(figure)
            plt.close(figure)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="a fruits bench --json report")
    args = parser.parse_args(argv)
    build(args.out, args.bench)
    print(f"wrote {args.out} ({len(SLIDES)} slides)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
