"""Build docs/presentation.pdf: the final demonstration's slides, drawn with matplotlib.

Every figure on the slides comes from the repository at build time, never typed in:
- the key layout and record fields from `fruits_core.contracts`;
- the EMR defaults from `infra/emr-cluster.yaml` (its Parameters' `Default:` values);
- throughput and latency from a `fruits bench --json` report (default `docs/data/bench.json`);
- the cost table from `fruits cost --images-per-day N --json` at three scales (run here, offline);
- the PCA scatter and the classifier's confusion matrix from the committed, executed notebook
  (`make notebook`), k, variance, probe and prediction accuracy from `docs/data/demo.json`
  (`fruits demo --record`), the full-sample prediction figures from `docs/data/predictions.json`;
- the demonstration from real command output in `docs/data/*.txt` (`make demo-record`);
- the IAM roles from the templates (`template.yaml`, `infra/emr-cluster.yaml`).

Modules (the `slides` package beside this file): `style` (page, colours, sizes), `drawing` (page,
bullets, tables, boxes, arrows, overflow checks), `sources` (the figures above), `pages_design`,
`pages_pipeline`, `pages_operations` (the slides, in deck order).

Offline and self-contained: matplotlib's bundled DejaVu fonts, embedded as TrueType
(`pdf.fonttype = 42`). Every text must lie inside its page: the build fails otherwise.

    python docs/slides/build.py [--out docs/presentation.pdf] [--bench docs/data/bench.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))  # docs/: the `slides` package

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from slides import pages_design, pages_operations, pages_pipeline  # noqa: E402
from slides.drawing import Deck, check_page  # noqa: E402
from slides.sources import COST_SCALES, DEFAULT_BENCH, DEFAULT_OUT, Figures, gather  # noqa: E402
from slides.style import PROBLEMS, LayoutError  # noqa: E402

__all__ = ["COST_SCALES", "DEFAULT_BENCH", "DEFAULT_OUT", "SLIDES", "build", "main"]

SLIDES = (
    pages_design.slide_title,
    pages_design.slide_deliverables,
    pages_design.slide_architecture,
    pages_design.slide_data_path,
    pages_design.slide_records,
    pages_design.slide_anonymization,
    pages_pipeline.slide_stream,
    pages_pipeline.slide_pca,
    pages_pipeline.slide_demo,
    pages_pipeline.slide_bench,
    pages_pipeline.slide_predictions,
    pages_operations.slide_emr,
    pages_operations.slide_iam,
    pages_operations.slide_cost,
    pages_operations.slide_gdpr,
    pages_operations.slide_choices,
    pages_operations.slide_limits,
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
