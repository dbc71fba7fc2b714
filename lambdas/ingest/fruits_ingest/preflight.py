"""Structure checks on the raw bytes, before any decoder runs: they bound the CPU one upload can cost.

Pillow and libjpeg do work per JPEG scan and per PNG chunk, so a small file
with a million empty scans (a "progressive bomb") costs minutes of CPU before
its pixels are even seen. Counting them is a pass over the bytes in C (regex
and `bytes.find`), with early exit at the limit. Files the walk cannot follow
are left to the decoder, which then calls them corrupt.
"""

from __future__ import annotations

import re

# Cameras and encoders write 1 (baseline) to about 12 scans; mozjpeg's optimized scripts stay under 20.
MAX_JPEG_SCANS = 100
# Markers of the first picture (APPn, DQT, DHT, SOF, SOS, COM...): phones write a few dozen at most.
MAX_JPEG_SEGMENTS = 1_000
# libpng writes one IDAT per 8 KiB: a 10 MiB PNG has about 1,300 chunks.
MAX_PNG_CHUNKS = 4_096

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9
_PNG_IEND = b"IEND"
# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart marker nor fill.
_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def structure_problem(data: bytes) -> str | None:
    """Why the file is too complex to decode safely (no submitted value), or None."""
    if data.startswith(JPEG_SOI):
        return _jpeg_problem(data)
    if data.startswith(PNG_SIGNATURE):
        return _png_problem(data)
    return None


def count_jpeg_segments(data: bytes, max_segments: int, max_scans: int) -> tuple[int, int]:
    """(segments, scans) of the first picture; counting stops once either passes its maximum."""
    position, segments, scans, size = len(JPEG_SOI), 0, 0, len(data)
    while position + 4 <= size and segments <= max_segments and scans <= max_scans:
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == _JPEG_EOI:
            break
        segments += 1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == _JPEG_SOS:
            scans += 1
            found = _ENTROPY_END.search(data, end)
            end = found.start() if found else size
        position = end
    return segments, scans


def count_png_chunks(data: bytes, limit: int) -> int:
    """Chunks up to IEND; counting stops once it passes `limit`."""
    position, chunks, size = len(PNG_SIGNATURE), 0, len(data)
    while position + 8 <= size and chunks <= limit:
        length = int.from_bytes(data[position : position + 4], "big")
        chunks += 1
        if data[position + 4 : position + 8] == _PNG_IEND:
            break
        position += 12 + length
    return chunks


def _jpeg_problem(data: bytes) -> str | None:
    segments, scans = count_jpeg_segments(data, MAX_JPEG_SEGMENTS, MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        return f"JPEG has more than {MAX_JPEG_SCANS} scans (progressive CPU bomb guard)"
    if segments > MAX_JPEG_SEGMENTS:
        return f"JPEG has more than {MAX_JPEG_SEGMENTS} marker segments"
    return None


def _png_problem(data: bytes) -> str | None:
    if count_png_chunks(data, MAX_PNG_CHUNKS) > MAX_PNG_CHUNKS:
        return f"PNG has more than {MAX_PNG_CHUNKS} chunks"
    return None
