"""Structure checks on the raw bytes, before any decoder runs: they bound the CPU one upload can cost.

Pillow and libjpeg do work per JPEG scan and per PNG chunk, so a small file
with a million empty scans (a "progressive bomb") costs minutes of CPU before
its pixels are even seen. The JPEG walk finds markers by libjpeg's own rules
(jdmarker.c): junk and 0xFF fill between segments are skipped, not a reason to
stop, so every SOS the decoder would reach is counted. It is a pass over the
bytes in C (regex search), with early exit at the limits. Files the walk
cannot follow are left to the decoder, which then calls them corrupt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Cameras and encoders write 1 (baseline) to about 12 scans; mozjpeg's optimized scripts stay under 20.
MAX_JPEG_SCANS = 100
# Markers of the first picture (APPn, DQT, DHT, SOF, SOS, COM...): phones write a few dozen at most.
MAX_JPEG_SEGMENTS = 1_000
# Pillow reads the header (everything before the first scan) in Python, one junk byte per loop turn:
# 1 MiB of 0xFF fill costs it 0.7 s. Encoders write none; a few bytes of padding are seen in the wild.
MAX_JPEG_HEADER_JUNK_BYTES = 64 * 1024
# libpng writes one IDAT per 8 KiB: a 10 MiB PNG has about 1,300 chunks.
MAX_PNG_CHUNKS = 4_096

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9
_JPEG_SOI_MARKER = 0xD8
# Markers libjpeg reads no length for: the restart markers (RST0-7) and every code below 0xC0
# (TEM and the reserved ones). Inside a scan's data, with restart intervals, jpeg_resync_to_restart
# drops a code below 0xC0 and searches on; elsewhere libjpeg stops on it with an error.
_JPEG_NO_LENGTH = frozenset({*range(0x01, 0xC0), *range(0xD0, 0xD8)})
_PNG_IEND = b"IEND"
# Text and ICC profile chunks: dropped before decoding (the clean image keeps none of them), so a
# photo with a 200 KB ICC profile or a 1.2 MB XMP packet is not refused by Pillow's text limits.
# eXIf stays: its orientation is applied.
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP"})
# libjpeg's next_marker: skip to a 0xFF, swallow fill 0xFFs, and drop "0xFF 0x00" (stuffed data).
# The marker is thus the first byte other than 0x00 and 0xFF that follows a 0xFF. Entropy-coded data
# ends the same way (jdhuff.c fill_bit_buffer, jdarith.c get_byte), so one search serves both.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")


@dataclass(frozen=True)
class JpegCounts:
    """What the walk saw of the first picture (it stops early once a count passes its limit)."""

    segments: int
    scans: int
    header_junk_bytes: int


def structure_problem(data: bytes) -> str | None:
    """Why the file is too complex to decode safely (no submitted value), or None."""
    if data.startswith(JPEG_SOI):
        return _jpeg_problem(data)
    if data.startswith(PNG_SIGNATURE):
        return _png_problem(data)
    return None


def count_jpeg_segments(data: bytes, max_segments: int, max_scans: int) -> tuple[int, int]:
    """(segments, scans) of the first picture; counting stops once either passes its maximum."""
    counts = walk_jpeg(data, max_segments, max_scans)
    return counts.segments, counts.scans


def walk_jpeg(
    data: bytes, max_segments: int, max_scans: int, max_junk: int = MAX_JPEG_HEADER_JUNK_BYTES
) -> JpegCounts:
    """Follow the markers as libjpeg does, from after SOI to EOI or the end of the bytes.

    Length-bearing segments are skipped by their length (libjpeg reads exactly that
    many bytes or fails); a length under 2 advances past the length field only, as
    libjpeg's skip_variable does. The walk never counts fewer scans than libjpeg reaches:
    where libjpeg would stop with an error (a second SOI, an unknown marker), the walk
    goes on or stops, and either can only count more or as many.
    """
    position, segments, scans, junk, size = len(JPEG_SOI), 0, 0, 0, len(data)
    while segments <= max_segments and scans <= max_scans and (scans or junk <= max_junk):
        found = _NEXT_MARKER.search(data, position)
        if found is None:
            break
        if not scans:
            junk += found.start() - position
        marker, position = data[found.start() + 1], found.end()
        if marker in (_JPEG_EOI, _JPEG_SOI_MARKER):
            break
        if marker in _JPEG_NO_LENGTH:
            junk += 0 if scans else 2
            continue
        segments += 1
        if position + 2 > size:
            break
        length = int.from_bytes(data[position : position + 2], "big")
        position += max(length, 2)
        scans += marker == _JPEG_SOS
    return JpegCounts(segments, scans, junk)


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


def without_png_metadata(data: bytes) -> bytes:
    """The PNG with its text and ICC chunks cut out (one copy, only when there is one to cut).

    Run after `structure_problem`, which bounds the chunk count. A chunk that runs past the
    end stops the walk and the rest is kept as it is, for the decoder to judge.
    """
    position, size, pieces, start = len(PNG_SIGNATURE), len(data), [], 0
    while position + 12 <= size:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > size:
            break
        if kind in _PNG_METADATA_CHUNKS:
            pieces.append(data[start:position])
            start = end
        position = end
        if kind == _PNG_IEND:
            break
    if not pieces:
        return data
    pieces.append(data[start:])
    return b"".join(pieces)


def _jpeg_problem(data: bytes) -> str | None:
    counts = walk_jpeg(data, MAX_JPEG_SEGMENTS, MAX_JPEG_SCANS)
    if counts.scans > MAX_JPEG_SCANS:
        return f"JPEG has more than {MAX_JPEG_SCANS} scans (progressive CPU bomb guard)"
    if counts.segments > MAX_JPEG_SEGMENTS:
        return f"JPEG has more than {MAX_JPEG_SEGMENTS} marker segments"
    if counts.header_junk_bytes > MAX_JPEG_HEADER_JUNK_BYTES:
        return f"JPEG has more than {MAX_JPEG_HEADER_JUNK_BYTES} bytes of junk before its first scan"
    return None


def _png_problem(data: bytes) -> str | None:
    if count_png_chunks(data, MAX_PNG_CHUNKS) > MAX_PNG_CHUNKS:
        return f"PNG has more than {MAX_PNG_CHUNKS} chunks"
    return None
