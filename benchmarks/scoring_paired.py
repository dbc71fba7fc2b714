"""Scoring's cost within one stream, its micro-batches scored and not in turn (bench mode scoring_paired).

Two streams in two interpreters differ by more than scoring (start-up, caches, the
machine's other load: up to +-20 % between runs on a shared machine), so the ratio of
two such runs cannot settle a cost of a few percent. Here one stream scores its even
micro-batches and runs the odd ones with no classifier; each steady batch is compared
with its neighbours, run by the same process seconds apart (benchmarks.stats.scoring_pair_ratios).
"""

from __future__ import annotations

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
