"""The README's and docs/lake.md's reader snippets, run as printed on a lake the test builds.

Each fenced Python block placed right after a `<!-- tested-snippet: NAME -->` marker is
extracted verbatim and run as a script from a directory holding `work/demo/lake` (the path
the snippets use, where `make demo` leaves its lake); its output is checked against the
rows the test wrote.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from small_files_lake import BATCHES_PER_DAY, DAYS, build_small_files_lake, feature_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "lake.md")
SNIPPET = re.compile(r"<!-- tested-snippet: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)\n```", re.DOTALL)


def snippets() -> dict[str, str]:
    found = {}
    for document in DOCUMENTS:
        for match in SNIPPET.finditer(document.read_text(encoding="utf-8")):
            assert match["name"] not in found, f"two snippets named {match['name']}"
            found[match["name"]] = match["code"]
    return found


def test_every_marker_is_followed_by_a_python_block():
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        assert text.count("<!-- tested-snippet:") == len(SNIPPET.findall(text)), document.name
    assert set(snippets()) == {"readme-pyiceberg-duckdb", "pyiceberg-filter", "duckdb-training-export"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reader")
    build_small_files_lake(root / "work" / "demo" / "lake")
    return root


def _run(code: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def _written_rows():
    return [
        row
        for day in DAYS
        for batch in range(BATCHES_PER_DAY)
        for row in feature_rows(day, batch).to_pylist()
    ]


def test_the_readme_counts_images_per_label_and_day(demo_dir: Path):
    lines = _run(snippets()["readme-pyiceberg-duckdb"], demo_dir)
    rows = _written_rows()
    per_day_and_label = Counter((row["uploaded_at"].date(), row["label"]) for row in rows)
    assert lines == [f"{len(rows)} rows"] + [
        f"{day} {label} {count}" for (day, label), count in sorted(per_day_and_label.items())
    ]


def test_the_pyiceberg_filter_reads_only_the_last_days(demo_dir: Path):
    (line,) = _run(snippets()["pyiceberg-filter"], demo_dir)
    since = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    expected = [row for row in _written_rows() if row["uploaded_at"] >= since]
    assert 0 < len(expected) < len(_written_rows())
    components = len(expected[0]["features"])
    assert line == f"{len(expected)} rows since {since.date()} with {components} components each"


def test_the_duckdb_training_export_writes_every_labelled_vector(demo_dir: Path):
    (line,) = _run(snippets()["duckdb-training-export"], demo_dir)
    labelled = [row for row in _written_rows() if row["label"] is not None]
    assert line == f"({len(labelled)}, {len(labelled[0]['features'])})"
    exported = pq.read_table(demo_dir / "training.parquet").to_pylist()
    assert [(row["image_id"], row["features"]) for row in exported] == sorted(
        (row["image_id"], row["features"]) for row in labelled
    )
