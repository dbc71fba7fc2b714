"""Structure counts on the raw bytes (before decoding) and reduced-scale decoding of large images."""

from __future__ import annotations

import io

import pytest
from fruits_ingest.imaging import ImageRejected, clean_size, normalize_image
from fruits_ingest.preflight import (
    MAX_JPEG_HEADER_JUNK_BYTES,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    count_jpeg_segments,
    count_png_chunks,
    structure_problem,
)
from PIL import Image

from fruits_core import contracts

from .bad_inputs import PIXEL_LIMIT, encode, pixels, png_many_chunks, progressive_bomb, scan_bomb_with_junk

pytestmark = pytest.mark.usefixtures("pillow_guards")


def test_baseline_and_progressive_jpegs_are_counted(sample_image_paths):
    real = sample_image_paths[0].read_bytes()
    _, baseline_scans = count_jpeg_segments(real, 1000, 1000)
    _, progressive_scans = count_jpeg_segments(encode(pixels(real), "JPEG", progressive=True), 1000, 1000)
    assert baseline_scans == 1
    assert 2 < progressive_scans <= 12
    assert structure_problem(real) is None


def test_scan_counting_stops_just_past_the_limit(sample_image_paths):
    bomb = progressive_bomb(sample_image_paths[0].read_bytes(), scans=5_000)
    _, scans = count_jpeg_segments(bomb, MAX_JPEG_SEGMENTS, MAX_JPEG_SCANS)
    assert scans == MAX_JPEG_SCANS + 1
    assert "scans" in structure_problem(bomb)


def test_one_junk_byte_does_not_hide_30000_scans(sample_image_paths):
    # GIVEN the bomb with a 0x00 after its first segment (libjpeg skips it and decodes every scan)
    bomb = scan_bomb_with_junk(sample_image_paths[0].read_bytes(), scans=30_000)
    # THEN the walk skips it too, counts past the limit and stops there
    assert count_jpeg_segments(bomb, MAX_JPEG_SEGMENTS, MAX_JPEG_SCANS)[1] == MAX_JPEG_SCANS + 1
    with pytest.raises(ImageRejected) as refused:
        normalize_image(bomb, PIXEL_LIMIT)
    assert refused.value.reason == contracts.QuarantineReason.TOO_COMPLEX


@pytest.mark.parametrize(
    "gap",
    [b"\x00", b"\xff\xff", b"\xff\x00", b"junk", b"\xff\xd3", b"\xff\x01", b"\xff\x7f"],
    ids=["zero", "fill", "stuffed-zero", "text", "restart-marker", "tem", "reserved-marker"],
)
def test_what_libjpeg_skips_between_segments_is_skipped(sample_image_paths, gap):
    real = encode(pixels(sample_image_paths[0].read_bytes()), "JPEG", progressive=True)
    first_segment_end = 4 + int.from_bytes(real[4:6], "big")
    padded = real[:first_segment_end] + gap + real[first_segment_end:]
    assert count_jpeg_segments(padded, 1000, 1000) == count_jpeg_segments(real, 1000, 1000)


def test_junk_before_the_first_scan_is_bounded(sample_image_paths):
    # Pillow walks the header in Python: 64 KiB of fill is the most it is given
    real = sample_image_paths[0].read_bytes()
    first_segment_end = 4 + int.from_bytes(real[4:6], "big")
    for size, refused in ((MAX_JPEG_HEADER_JUNK_BYTES, False), (MAX_JPEG_HEADER_JUNK_BYTES + 1, True)):
        padded = real[:first_segment_end] + b"\xff" * size + real[first_segment_end:]
        assert (structure_problem(padded) is not None) == refused
    assert structure_problem(real + b"\x00" * 1_000_000) is None  # after EOI: never read


def test_byte_stuffing_and_restart_markers_are_not_segments():
    entropy = b"\x12\xff\x00\x34\xff\xd0\x56\xff\xff\xd7\x78"
    data = b"\xff\xd8\xff\xda\x00\x02" + entropy + b"\xff\xd9"
    assert count_jpeg_segments(data, 100, 100) == (1, 1)


def test_a_marker_inside_a_scan_is_found_after_fill_bytes():
    entropy = b"\x12\xff\xff\xff\xda\x00\x02\x34"
    data = b"\xff\xd8\xff\xda\x00\x02" + entropy + b"\xff\xd9"
    assert count_jpeg_segments(data, 100, 100) == (2, 2)


def test_png_chunks_are_counted_up_to_iend(sample_image_paths):
    real = sample_image_paths[0].read_bytes()
    assert count_png_chunks(encode(pixels(real), "PNG"), 100) == 3  # IHDR, IDAT, IEND
    assert count_png_chunks(png_many_chunks(real), MAX_PNG_CHUNKS) == MAX_PNG_CHUNKS + 1


def test_garbage_after_the_magic_is_left_to_the_decoder():
    assert structure_problem(b"\xff\xd8\x00\x01\x02") is None
    assert structure_problem(b"\x89PNG\r\n\x1a\n\x00") is None


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((100, 60), (100, 60)),
        ((4096, 3072), (448, 336)),
        ((3000, 9000), (149, 448)),
        ((65500, 32), (448, 1)),
    ],
)
def test_clean_size_fits_the_long_side_and_never_enlarges(size, expected):
    assert clean_size(*size) == expected
    assert max(expected) <= contracts.CLEAN_IMAGE_MAX_SIDE_PX


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_large_image_comes_out_at_the_clean_size(image_format):
    # GIVEN a 4000x3000 photo-sized image WHEN normalized THEN the clean image is 448x336 RGB JPEG
    image = Image.new("RGB", (4000, 3000), (30, 160, 60))
    clean = normalize_image(encode(image, image_format), PIXEL_LIMIT)
    assert (clean.width, clean.height) == (448, 336)
    with Image.open(io.BytesIO(clean.jpeg)) as output:
        assert output.size == (448, 336)
        assert output.getpixel((200, 150)) == pytest.approx((30, 160, 60), abs=3)


def test_exif_rotation_is_applied_after_shrinking():
    # GIVEN a 4000x2000 JPEG tagged "rotate 90" WHEN normalized THEN it comes out upright, 224x448
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (4000, 2000), (200, 0, 0)), "JPEG", exif=exif.tobytes())
    clean = normalize_image(data, PIXEL_LIMIT)
    assert (clean.width, clean.height) == (224, 448)


def test_encoder_limit_is_refused_before_decoding():
    data = encode(Image.new("L", (65_501, 32)), "PNG")
    with pytest.raises(ImageRejected) as refused:
        normalize_image(data, PIXEL_LIMIT)
    assert refused.value.reason == contracts.QuarantineReason.SIDE_TOO_LONG
