"""Scoring's cost within one stream, its micro-batches scored and not in turn (bench mode scoring_paired).

Two streams in two interpreters differ by more than scoring (start-up, caches, the
machine's other load: up to +-20 % between runs on a shared machine), so the ratio of
two such runs cannot settle a cost of a few percent. Here one stream scores its even
micro-batches and runs the odd ones with no classifier; each steady batch is compared
with its neighbours, run by the same process seconds apart (benchmarks.stats.scoring_pair_ratios).
"""

from __future__ import annotations

import pyarrow.compute as pc
from pyiceberg.table import Table

from fruits_lake.catalog import BATCH_ID_PROPERTY
from streaming_job.scoring.classifier_swap import ClassifierSwap


class AlternateScoring(ClassifierSwap):
    """Scores micro-batches 0, 2, 4, ...; the others get no classifier, so their predictions stay null.

    The lake's latest.json is read at every batch boundary, as in the stream's own swap.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scored: list[bool] = []

    def for_batch(self) -> object | None:
        broadcast = super().for_batch()
        scoring = len(self.scored) % 2 == 0
        self.scored.append(scoring)
        return broadcast if scoring else None


def rows_by_batch(features: Table) -> dict[int, dict[str, int]]:
    """Rows each micro-batch appended to the features table and how many of them carry a prediction,
    from the table's snapshots (each batch's commit names its batch id)."""
    counted: dict[int, dict[str, int]] = {}
    rows_before = scored_before = 0
    for snapshot in sorted(features.snapshots(), key=lambda snapshot: snapshot.sequence_number or 0):
        labels = (
            features.scan(snapshot_id=snapshot.snapshot_id, selected_fields=("predicted_label",))
            .to_arrow()
            .column("predicted_label")
        )
        rows, scored = len(labels), int(pc.sum(pc.is_valid(labels)).as_py() or 0)
        batch_id = snapshot.summary[BATCH_ID_PROPERTY] if snapshot.summary is not None else None
        if batch_id is not None:
            counted[int(batch_id)] = {"rows": rows - rows_before, "scored_rows": scored - scored_before}
        rows_before, scored_before = rows, scored
    return counted
