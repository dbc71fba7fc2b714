"""Scoring: the published classifier applied to each row, and its hot swap at a batch boundary."""
