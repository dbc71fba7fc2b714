"""Snapshot expiry: drop snapshots past the retention, always keeping the newest ones.

Expiry only edits the table's metadata; the files that no kept snapshot references
any more are removed afterwards by `orphans.remove_orphan_files`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pyiceberg.table import Table


def snapshots_to_expire(
    snapshots: Iterable[tuple[int, int]], protected: set[int], older_than_ms: int, keep_last: int
) -> list[int]:
    """Ids of the (id, timestamp_ms) snapshots to expire: older than the cutoff, not among the
    `keep_last` newest, not the head of a branch or tag."""
    newest_first = sorted(snapshots, key=lambda snapshot: snapshot[1], reverse=True)
    kept = {snapshot_id for snapshot_id, _ in newest_first[:keep_last]}
    return [
        snapshot_id
        for snapshot_id, timestamp_ms in newest_first
        if timestamp_ms < older_than_ms and snapshot_id not in kept and snapshot_id not in protected
    ]


def expire_snapshots(table: Table, older_than: datetime, keep_last: int) -> int:
    """Expire in one commit; returns how many snapshots went (CommitFailedException on a race)."""
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    expired = snapshots_to_expire(
        ((snapshot.snapshot_id, snapshot.timestamp_ms) for snapshot in table.snapshots()),
        protected,
        int(older_than.timestamp() * 1000),
        keep_last,
    )
    if expired:
        expire_snapshot_ids(table, expired)
    return len(expired)


def expire_snapshot_ids(table: Table, snapshot_ids: list[int]) -> None:
    """Expire exactly these snapshots in one commit (CommitFailedException on a race)."""
    expire = table.maintenance.expire_snapshots()
    # pyiceberg 0.10 declares this set on the class, so every builder shares it and a second
    # table would be asked to remove the first one's ids ("Snapshot ... does not exist").
    expire._snapshot_ids_to_expire = set()
    expire.by_ids(snapshot_ids).commit()
