"""The worst inputs the ingest accepts, measured one per fresh process (peak RSS, wall time).

`python -m tests.ingest.worst_case make NAME PATH` writes input NAME to PATH;
`... measure PATH` imports the Lambda's modules (Powertools, boto3, Pillow: the
function's own baseline), runs `normalize_image` on the file and prints one
JSON line. Each measurement runs in a fresh process, without the generator's
memory, so one peak does not hide another. Used by test_ingest_limits.py and
to size the function's MemorySize (docs/ingest-security.md).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Callable

from fruits_ingest.config import DEFAULT_MAX_IMAGE_PIXELS
from fruits_ingest.preflight import MAX_JPEG_HEADER_JUNK_BYTES, MAX_JPEG_SCANS
from PIL import Image

# 16383 is WebP's largest side; 16383 x 2441 is just under the 40 MP limit.
WIDE_SIDES = (16_383, 2_441)
SQUARE_SIDES = (6_324, 6_324)


def _noise(size: tuple[int, int], mode: str) -> Image.Image:
    """Content that compresses little at a low cost to make: a small noise tile, repeated."""
    tile = Image.effect_noise((256, 256), 64).convert(mode)
    canvas = Image.new(mode, size)
    for x in range(0, size[0], 256):
        for y in range(0, size[1], 256):
            canvas.paste(tile, (x, y))
    return canvas


def _save(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def webp_rgba_40mp() -> bytes:
    return _save(Image.new("RGBA", WIDE_SIDES, (10, 200, 30, 128)), "WEBP", lossless=True, method=0)


def png_rgba_40mp() -> bytes:
    return _save(_noise(SQUARE_SIDES, "RGBA"), "PNG", compress_level=1)


def png_palette_transparent_40mp() -> bytes:
    return _save(_noise(SQUARE_SIDES, "L").convert("P"), "PNG", transparency=0, compress_level=1)


def jpeg_progressive_444_40mp_max_scans() -> bytes:
    """40 MP, no chroma subsampling, progressive, its last (near empty) scan repeated up to the limit,
    and as much 0xFF fill before its first marker as the preflight lets through (Pillow walks it).

    Mostly flat content keeps every scan small, as in the attack: the cost is per scan and block.
    """
    image = Image.new("RGB", SQUARE_SIDES, (200, 120, 40))
    image.paste(_noise((256, 256), "RGB"), (0, 0))
    data = _save(image, "JPEG", progressive=True, subsampling=0, quality=90)
    last_scan = data.rindex(b"\xff\xda")
    scans = data.count(b"\xff\xda")
    data = data[:last_scan] + data[last_scan:-2] * (MAX_JPEG_SCANS - scans + 1) + b"\xff\xd9"
    return data[:2] + b"\xff" * MAX_JPEG_HEADER_JUNK_BYTES + data[2:]


def png_rgba_40mp_large_metadata() -> bytes:
    """The 40 MP PNG with a 200 KB ICC profile and 1.2 MB of XMP: both are cut out, one copy of the file."""
    data = png_rgba_40mp()
    icc = b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(range(256)) * 800)
    xmp = b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + b"<rdf:li>step</rdf:li>" * 57_000
    chunks = b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in (icc, xmp)
    )
    return data[:33] + chunks + data[33:]


INPUTS: dict[str, Callable[[], bytes]] = {
    "webp-rgba-16383x2441": webp_rgba_40mp,
    "png-rgba-40mp": png_rgba_40mp,
    "png-palette-transparent-40mp": png_palette_transparent_40mp,
    "jpeg-progressive-444-40mp-100-scans-64kib-fill": jpeg_progressive_444_40mp_max_scans,
    "png-rgba-40mp-200kb-icc-1.2mb-xmp": png_rgba_40mp_large_metadata,
}


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM).

    Not `getrusage().ru_maxrss`: Linux carries that across fork and exec, so a child of a
    large pytest process would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(path: str) -> dict[str, object]:
    with open(path, "rb") as handle:
        data = handle.read()
    import app  # noqa: F401 (the function's imports: its memory baseline)
    from fruits_ingest.imaging import normalize_image

    baseline_mb = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    clean = normalize_image(data, DEFAULT_MAX_IMAGE_PIXELS)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "input_bytes": len(data),
        "output": [clean.width, clean.height],
        "seconds": round(seconds, 2),
        # CPU time: on a shared machine the wall time measures the neighbours too
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_decode_mb": round(baseline_mb),
    }


def make(name: str, path: str) -> None:
    with open(path, "wb") as handle:
        handle.write(INPUTS[name]())


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        print(json.dumps(measure(sys.argv[2])))
