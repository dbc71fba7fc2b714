"""Property tests: the preflight never counts fewer JPEG scans than libjpeg reaches, whatever is inserted.

Each example takes a real photo (data/fruits360-sample) or a hostile variant of it
and inserts junk bytes, 0xFF fill, stuffed zeros and stray markers (any marker code,
with or without a plausible length) at random places, in the header, between scans
and inside entropy-coded data. The reference count is libjpeg's own (the library
Pillow decodes with, driven scan by scan through tests/ingest/libjpeg_scan_count.c).

What this proves: for the inputs hypothesis generates, preflight >= libjpeg, so a
file libjpeg would spend more than MAX_JPEG_SCANS scans on is refused. It is a
search for counterexamples, not a proof over all byte strings; the argument for
that is in preflight.py (the walk follows jdmarker.c's rules and never skips bytes
libjpeg reads as a marker).
"""

from __future__ import annotations

import re

import pytest
from fruits_ingest.preflight import MAX_JPEG_SCANS, structure_problem, walk_jpeg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .bad_inputs import encode, pixels, progressive_bomb, scan_bomb_with_junk
from .libjpeg_reference import build, scan_count

UNLIMITED = 10**9
ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# Stray markers: every code libjpeg treats differently (parameterless, length-bearing, fatal, SOS/EOI/SOI).
MARKER_CODES = [0x01, 0x02, 0xC0, 0xC2, 0xC4, 0xC8, 0xCC, 0xD0, 0xD3, 0xD7, 0xD8, 0xD9, 0xDA, 0xDB, 0xDD]
MARKER_CODES += [0xE0, 0xE1, 0xEE, 0xEF, 0xF0, 0xFE]

junk = st.binary(min_size=1, max_size=40).map(lambda raw: raw.replace(b"\xff", b"\x00"))
fill = st.integers(min_value=1, max_value=64).map(lambda count: b"\xff" * count)
stuffed = st.integers(min_value=1, max_value=4).map(lambda count: b"\xff" * count + b"\x00")
stray_marker = st.tuples(
    st.integers(min_value=0, max_value=3).map(lambda count: b"\xff" * count),
    st.sampled_from(MARKER_CODES),
    st.binary(min_size=0, max_size=12),
).map(lambda parts: parts[0] + b"\xff" + bytes([parts[1]]) + parts[2])
insertion = st.one_of(junk, fill, stuffed, stray_marker, st.binary(min_size=1, max_size=16))
insertions = st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0), insertion), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def libjpeg(tmp_path_factory):
    built = build(tmp_path_factory.mktemp("libjpeg"))
    if isinstance(built, str):
        pytest.skip(built)
    return built


class Seeds(dict):
    """The seed files by name (a short repr keeps hypothesis' failure reports readable)."""

    def __repr__(self) -> str:
        return f"Seeds({', '.join(self)})"


@pytest.fixture(scope="module")
def seeds(sample_image_paths) -> Seeds:
    """Real photos and hostile variants: baseline, progressive, a bomb under and one over the limit."""
    real = sample_image_paths[0].read_bytes()
    progressive = encode(pixels(sample_image_paths[7].read_bytes()), "JPEG", progressive=True)
    return Seeds(
        {
            "baseline": real,
            "progressive": progressive,
            "restart-intervals": encode(pixels(real), "JPEG", progressive=True, restart_marker_blocks=1),
            "bomb-under-limit": progressive_bomb(real, scans=MAX_JPEG_SCANS - 20),
            "bomb-over-limit": progressive_bomb(real, scans=MAX_JPEG_SCANS + 5),
            "bomb-with-junk": scan_bomb_with_junk(real, scans=MAX_JPEG_SCANS + 5),
        }
    )


def insert_all(data: bytes, where: list[tuple[float, bytes]]) -> bytes:
    """Insert each payload at a fraction of the length (never inside the SOI marker)."""
    for fraction, payload in where:
        at = 2 + int(fraction * (len(data) - 2))
        data = data[:at] + payload + data[at:]
    return data


def test_the_reference_counts_scans_like_the_walk_on_clean_files(libjpeg, seeds):
    for name, data in seeds.items():
        assert walk_jpeg(data, UNLIMITED, UNLIMITED).scans == scan_count(libjpeg, data, UNLIMITED), name
    assert scan_count(libjpeg, seeds["bomb-with-junk"], UNLIMITED) > MAX_JPEG_SCANS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(
        [
            "baseline",
            "progressive",
            "restart-intervals",
            "bomb-under-limit",
            "bomb-over-limit",
            "bomb-with-junk",
        ]
    ),
    where=insertions,
)
def test_preflight_never_counts_fewer_scans_than_libjpeg(libjpeg, seeds, seed, where):
    data = insert_all(seeds[seed], where)
    decoded = scan_count(libjpeg, data, UNLIMITED)
    assert walk_jpeg(data, UNLIMITED, UNLIMITED, max_junk=UNLIMITED).scans >= decoded
    if decoded > MAX_JPEG_SCANS:
        assert structure_problem(data) is not None


@settings(max_examples=200, deadline=None)
@given(
    seed=st.sampled_from(["baseline", "progressive", "bomb-over-limit"]),
    gaps=st.lists(st.one_of(junk, fill, stuffed), min_size=1, max_size=6),
    data=st.data(),
)
def test_junk_between_segments_changes_no_count(seeds, seed, gaps, data):
    # GIVEN junk/fill/stuffed zeros put before markers, where libjpeg's next_marker skips them
    original = seeds[seed]
    starts = _marker_starts(original)
    chosen = sorted(data.draw(st.lists(st.sampled_from(starts), min_size=1, max_size=len(gaps), unique=True)))
    mutated = original
    for at, gap in zip(reversed(chosen), gaps, strict=False):
        mutated = mutated[:at] + gap + mutated[at:]
    # THEN the walk sees the same scans and segments as in the clean file
    before, after = walk_jpeg(original, UNLIMITED, UNLIMITED), walk_jpeg(mutated, UNLIMITED, UNLIMITED)
    assert (after.scans, after.segments) == (before.scans, before.segments)


def _marker_starts(data: bytes) -> list[int]:
    """Offsets of the markers of a well-formed file, after SOI (the places where junk may sit)."""
    starts, position = [], 2
    while data[position + 1] != 0xD9:
        starts.append(position)
        marker = data[position + 1]
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:  # the scan's data ends at the next marker other than a restart
            position = ENTROPY_END.search(data, position).start()
    return starts
