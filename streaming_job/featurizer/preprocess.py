"""Image bytes -> the model's input pixels (pure functions: Pillow and NumPy only)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from fruits_core import contracts

# Only what the lake holds (clean images are JPEG) or an app may upload: no other decoder is reachable.
DECODER_FORMATS = contracts.IMAGE_PILLOW_FORMATS
# Checked before pixels are decoded, so a decompression bomb costs nothing (thread-safe, unlike
# turning Pillow's DecompressionBombWarning into an error with the global warnings filters).
MAX_DECODED_PIXELS = contracts.MAX_IMAGE_PIXELS
# MobileNetV2 expects inputs in [-1, 1]: x / 127.5 - 1.
MOBILENET_SCALE = 127.5
MOBILENET_OFFSET = 1.0


class ImageDecodeError(ValueError):
    """The bytes are not a decodable JPEG/PNG/WebP image; the message says why (no PII)."""


def decode_and_resize(data: bytes, input_size: int) -> np.ndarray:
    """Decode an image and resize it to `input_size` x `input_size` RGB, as uint8 [S, S, 3].

    JPEGs are decoded in draft mode (DCT scaling): a large photo is decoded
    directly at a fraction of its size, which is most of the speed.
    """
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with Image.open(io.BytesIO(data), formats=DECODER_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_DECODED_PIXELS:
                raise ImageDecodeError(f"{width}x{height} pixels exceeds the limit of {MAX_DECODED_PIXELS}")
            if image.format == "JPEG":
                image.draft("RGB", (input_size, input_size))
            image.load()
            rgb = image.convert("RGB")
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as error:
        raise ImageDecodeError(f"not a {'/'.join(DECODER_FORMATS)} image") from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"cannot decode image: {error}") from error
    if rgb.size != (input_size, input_size):
        rgb = rgb.resize((input_size, input_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(rgb, dtype=np.uint8)


def scale_for_mobilenet(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], MobileNetV2's input range (NumPy twin of the TF path)."""
    return images_uint8.astype(np.float32) / MOBILENET_SCALE - MOBILENET_OFFSET
