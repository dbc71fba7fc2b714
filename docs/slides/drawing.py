"""Drawing helpers: a page, wrapped bullets, ruled tables, boxes and arrows, each checked for overflow."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from slides.style import (
    BODY_PT,
    GREEN,
    GREY,
    INK,
    LEFT,
    LIGHT,
    LINE,
    PAGE,
    PROBLEMS,
    RIGHT,
    SMALL_PT,
    TABLE_PT,
    TITLE_PT,
)


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
            require_within(figure, text, x0, x1, cell)
        y -= height
        figure.add_artist(
            plt.Line2D(
                [edges[0], edges[-1]], [y, y], transform=figure.transFigure, color="#b8c8b8", linewidth=0.8
            )
        )
    return y


def require_within(figure, text, x0: float, x1: float, what: str) -> None:
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
    require_within(figure, label, x, x + w, text.replace("\n", " "))
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
