"""Pillow decoding and re-encoding, checked on real sample images."""

from __future__ import annotations

import io

import pytest
from fruits_ingest.imaging import ImageRejected, normalize_image
from PIL import Image

from fruits_core.contracts import QuarantineReason

from .bad_inputs import PIXEL_LIMIT, encode, jpeg_with_personal_metadata, pixels, png_header_only

pytestmark = pytest.mark.usefixtures("pillow_guards")


def test_real_jpeg_round_trips_to_clean_rgb_jpeg(sample_image_paths):
    # GIVEN a real Fruits-360 photo WHEN normalized THEN it stays 100x100 RGB JPEG and looks the same
    real = sample_image_paths[0].read_bytes()
    clean = normalize_image(real, PIXEL_LIMIT)
    with Image.open(io.BytesIO(clean.jpeg)) as out, Image.open(io.BytesIO(real)) as original:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (100, 100))
        difference = [
            abs(a - b) for a, b in zip(out.getpixel((50, 50)), original.getpixel((50, 50)), strict=True)
        ]
    assert max(difference) < 12
    assert (clean.width, clean.height, clean.source_format) == (100, 100, "jpeg")


def test_exif_orientation_is_applied_then_every_metadata_chunk_dropped(sample_image_paths):
    # GIVEN a 100x60 JPEG tagged "rotate 90 CW" with GPS, an ICC profile and a comment
    upload = jpeg_with_personal_metadata(sample_image_paths[0].read_bytes())
    with Image.open(io.BytesIO(upload)) as source:
        assert source.getexif().get_ifd(0x8825) and "icc_profile" in source.info and "comment" in source.info

    # WHEN normalized
    clean = normalize_image(upload, PIXEL_LIMIT)

    # THEN the pixels are upright (60 wide, 100 high) and nothing but pixels survives
    with Image.open(io.BytesIO(clean.jpeg)) as out:
        assert out.size == (60, 100)
        assert not out.getexif()
        assert not {"exif", "icc_profile", "comment", "xmp", "photoshop"} & set(out.info)
        markers = [m for m in out.applist if m[0] != "APP0"]  # APP0 is the bare JFIF header
    assert markers == []


def test_explicit_pixel_limit_holds_below_pillows_global_guard(sample_image_paths):
    # GIVEN a 100x100 image and a 5,000-pixel limit WHEN normalized THEN it is too_many_pixels
    with pytest.raises(ImageRejected) as rejected:
        normalize_image(sample_image_paths[0].read_bytes(), 5_000)
    assert rejected.value.reason is QuarantineReason.TOO_MANY_PIXELS


def test_header_only_bomb_is_refused_before_decoding():
    with pytest.raises(ImageRejected) as rejected:
        normalize_image(png_header_only(100_000, 100_000), PIXEL_LIMIT)
    assert rejected.value.reason is QuarantineReason.TOO_MANY_PIXELS


@pytest.mark.parametrize(("size", "reason"), [((31, 200), QuarantineReason.TOO_SMALL), ((32, 32), None)])
def test_minimum_side_is_32_pixels(sample_image_paths, size, reason):
    data = encode(pixels(sample_image_paths[0].read_bytes()).resize(size), "PNG")
    if reason is None:
        assert normalize_image(data, PIXEL_LIMIT).width == 32
    else:
        with pytest.raises(ImageRejected) as rejected:
            normalize_image(data, PIXEL_LIMIT)
        assert rejected.value.reason is reason


def test_tiff_is_unsupported_even_though_pillow_could_read_it(sample_image_paths):
    data = encode(pixels(sample_image_paths[0].read_bytes()), "TIFF")
    with pytest.raises(ImageRejected) as rejected:
        normalize_image(data, PIXEL_LIMIT)
    assert rejected.value.reason is QuarantineReason.UNSUPPORTED_FORMAT
