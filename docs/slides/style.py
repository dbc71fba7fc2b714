"""The deck's page size, colours and type sizes; the list of layout problems the build fails on."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

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


class LayoutError(ValueError):
    """Some text overflows its table cell, box or page."""
