"""The demo's PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def model_title(model_version: str) -> str:
    """'mobilenetv2-imagenet-int8 (litert, 224 px)' from a model_version."""
    name, runtime, size, _ = model_version.rsplit("-", 3)
    return f"{name} ({runtime}, {size} px)"


def explained_variance_plot(explained_variance: list[float], model_version: str, out: Path) -> Path:
    """Bars: each component's share of the variance; line: the cumulative share."""
    plt = _pyplot()
    ratios = np.asarray(explained_variance, dtype=float)
    components = np.arange(1, len(ratios) + 1)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(components, ratios, color="#8fbc8f", label="per component")
    axis.plot(components, np.cumsum(ratios), color="#2e5e2e", marker="o", markersize=3, label="cumulative")
    axis.set_xlabel("principal component")
    axis.set_ylabel("share of the feature variance")
    axis.set_ylim(0, 1.02)
    axis.set_title(
        f"PCA explained variance (k={len(ratios)}, total {ratios.sum():.1%})\n{model_title(model_version)}"
    )
    axis.legend(loc="center right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def pca_scatter_plot(
    scores: np.ndarray,
    labels: list[str],
    model_version: str,
    out: Path,
    explained_variance: list[float] | None = None,
) -> Path:
    """The images on the first two principal components, one colour per label; each axis says its
    component's share of the variance when `explained_variance` is given."""
    plt = _pyplot()
    if scores.ndim != 2 or scores.shape[1] < 2:
        scores = (
            np.zeros((len(labels), 2))
            if scores.size == 0
            else np.column_stack([scores.reshape(len(labels), -1)[:, 0], np.zeros(len(labels))])
        )
    figure, axis = plt.subplots(figsize=(6, 5))
    for label in sorted(set(labels)):
        chosen = np.asarray([value == label for value in labels])
        axis.scatter(scores[chosen, 0], scores[chosen, 1], s=18, alpha=0.8, label=label)
    axis.set_xlabel(axis_label(1, explained_variance))
    axis.set_ylabel(axis_label(2, explained_variance))
    axis.set_title(
        f"{len(labels)} featurized images on the first two components\n{model_title(model_version)}"
    )
    axis.legend(loc="best", fontsize="small")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def axis_label(component: int, explained_variance: list[float] | None) -> str:
    """`PC 1 (42.5 % of the variance)`, or `PC 1` when the share is unknown."""
    if not explained_variance or len(explained_variance) < component:
        return f"PC {component}"
    return f"PC {component} ({explained_variance[component - 1] * 100:.1f} % of the variance)"
