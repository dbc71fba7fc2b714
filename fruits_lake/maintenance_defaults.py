"""The lake maintenance's defaults and limits, for its options (maintenance.py) and flags (maintain_cli.py).

A plain module, so that neither of the two imports the other for a number.
"""

from __future__ import annotations

# Snapshots: a day. Each stream append rewrites the table's metadata, which grows with the snapshots
# kept (~2.2 ms more per commit per snapshot, benchmarks/commit_cost.py): a day of 60 s triggers keeps
# a commit near 3 s, a week would reach ~22 s. The newest `keep_snapshots` always stay, so a batch
# replayed after a long outage still finds its own commit.
DEFAULTS = {"snapshot_retention_days": 1.0, "keep_snapshots": 10, "orphan_min_age_hours": 24.0}
# Storage limitation (GDPR Art. 5(1)(e)): a feature row is kept one year, a full cycle of fruit
# seasons for training, then deleted from the table (the bytes go with the next orphan removal).
DEFAULT_RETENTION_DAYS = 365
# An in-flight commit's files exist before the catalog references them; an hour is far longer
# than any commit takes, so no smaller minimum age is accepted.
MIN_ORPHAN_AGE_HOURS = 1.0
