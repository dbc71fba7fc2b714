"""Decoding and resizing real images for the model (Pillow only, no TensorFlow)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from streaming_job.featurizer import preprocess
from streaming_job.featurizer.preprocess import ImageDecodeError, decode_and_resize, scale_for_mobilenet


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def test_real_jpeg_is_decoded_and_resized_to_the_model_input(sample_image_paths):
    # GIVEN a real 100x100 Fruits-360 JPEG
    data = sample_image_paths[0].read_bytes()
    # WHEN it is decoded for a 96-px and a 224-px model
    small, large = decode_and_resize(data, 96), decode_and_resize(data, 224)
    # THEN both are RGB uint8 squares of the requested size, with real content
    assert small.shape == (96, 96, 3) and large.shape == (224, 224, 3)
    assert small.dtype == np.uint8 and large.dtype == np.uint8
    assert small.std() > 10


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_png_and_webp_decode_like_the_jpeg_they_came_from(sample_image_paths, image_format):
    # GIVEN a real image re-encoded losslessly-ish as PNG / WebP
    original = Image.open(sample_image_paths[10]).convert("RGB")
    data = encode(original, image_format)
    # WHEN decoded
    pixels = decode_and_resize(data, 100)
    # THEN the pixels are those of the original (WebP is lossy: close, not equal)
    assert np.abs(pixels.astype(int) - np.asarray(original, dtype=int)).mean() < 8


def test_large_jpeg_is_decoded_in_draft_mode_to_the_target_size(sample_image_paths):
    # GIVEN a 3000x2000 photo-sized JPEG made from a real image
    big = Image.open(sample_image_paths[0]).convert("RGB").resize((3000, 2000))
    data = encode(big, "JPEG")
    # WHEN decoded for a 96-px model
    pixels = decode_and_resize(data, 96)
    # THEN it comes out at the model size (the whole picture, squashed, not cropped)
    assert pixels.shape == (96, 96, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a JPEG/PNG/WEBP image"),
    ],
)
def test_non_images_raise_a_clear_decode_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_and_resize(data, 96)


def test_truncated_jpeg_raises_a_decode_error(sample_image_paths):
    # GIVEN the first half of a real JPEG (an interrupted upload)
    data = sample_image_paths[0].read_bytes()
    # WHEN / THEN decoding fails with a decode error, not a crash or garbage pixels
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        decode_and_resize(data[: len(data) // 2], 96)


def test_formats_outside_the_allow_list_are_refused(sample_image_paths):
    # GIVEN a valid GIF (a decoder we never need to expose)
    data = encode(Image.open(sample_image_paths[0]).convert("RGB"), "GIF")
    # WHEN / THEN it is refused as "not an image" of the accepted formats
    with pytest.raises(ImageDecodeError, match="not a JPEG/PNG/WEBP image"):
        decode_and_resize(data, 96)


def test_images_over_the_pixel_limit_are_refused_before_decoding(sample_image_paths, monkeypatch):
    # GIVEN a pixel limit below the size of a real 100x100 image
    monkeypatch.setattr(preprocess, "MAX_DECODED_PIXELS", 100 * 100 - 1)
    # WHEN / THEN it is refused with the size in the message
    with pytest.raises(ImageDecodeError, match="100x100 pixels exceeds"):
        decode_and_resize(sample_image_paths[0].read_bytes(), 96)


def test_palette_and_grey_images_become_rgb(sample_image_paths):
    grey = encode(Image.open(sample_image_paths[0]).convert("L"), "PNG")
    palette = encode(Image.open(sample_image_paths[0]).convert("P"), "PNG")
    assert decode_and_resize(grey, 64).shape == (64, 64, 3)
    assert decode_and_resize(palette, 64).shape == (64, 64, 3)


def test_mobilenet_scaling_maps_pixels_to_minus_one_one():
    pixels = np.array([[0, 127, 255]], dtype=np.uint8)
    scaled = scale_for_mobilenet(pixels)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[-1.0, 127 / 127.5 - 1, 1.0]], atol=1e-6)


def test_the_stream_decodes_what_the_ingest_accepts_under_the_same_pixel_limit():
    # One definition in the shared core (until preprocess imports it itself: issue 10, lead's file).
    from fruits_core import contracts
    from streaming_job.featurizer import preprocess

    assert preprocess.DECODER_FORMATS == contracts.IMAGE_PILLOW_FORMATS
    assert preprocess.MAX_DECODED_PIXELS == contracts.MAX_IMAGE_PIXELS
