"""The classifier's confusion-matrix PNG (matplotlib, Agg backend), as bytes for the lake."""

from __future__ import annotations

import io

import numpy as np


def confusion_matrix_plot(confusion: list[list[int]], labels: list[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion)
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2.5))
    axis.imshow(counts, cmap="Greens")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("uploader's label")
    for row in range(len(labels)):
        for column in range(len(labels)):
            colour = "white" if counts[row, column] > counts.max() / 2 else "black"
            axis.text(column, row, str(counts[row, column]), ha="center", va="center", color=colour)
    axis.set_title(f"held-out confusion matrix\n{title}", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
