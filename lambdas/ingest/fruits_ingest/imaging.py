"""Decode an untrusted upload with Pillow and re-encode it as a clean RGB JPEG.

Only the JPEG, PNG and WebP decoders are ever used (several recent Pillow
decompression-bomb CVEs were in other formats). The pixels are really decoded
(`load()`, not `verify()`), EXIF orientation is applied, and the result is
built from the pixels alone, so no EXIF, GPS, ICC, XMP or comment survives.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from fruits_core.contracts import CLEAN_IMAGE_FORMAT, QuarantineReason
from fruits_core.contracts import IMAGE_PILLOW_FORMATS as ALLOWED_PILLOW_FORMATS

MIN_SIDE_PX = 32
CLEAN_JPEG_QUALITY = 90
_WHITE = (255, 255, 255)
# Pillow reports JPEGs with a multi-picture index (phone cameras write them) as MPO.
_FORMAT_NAMES = {"MPO": "jpeg"}

# Magic numbers of image formats we refuse: they are "unsupported", not "not an image".
_FOREIGN_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (0, b"8BPS", "psd"),
    (0, b"\xff\x0a", "jpeg-xl"),
    (0, b"\x00\x00\x00\x0cJXL ", "jpeg-xl"),
    (0, b"%PDF", "pdf"),
    (4, b"ftypheic", "heic"),
    (4, b"ftypheix", "heic"),
    (4, b"ftypmif1", "heif"),
    (4, b"ftypavif", "avif"),
)


class ImageRejected(Exception):
    """The upload is not an acceptable image; `reason` is a stable quarantine code."""

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CleanImage:
    """The re-encoded image and what the manifest says about it."""

    jpeg: bytes
    width: int
    height: int
    source_format: str


def install_pillow_guards(max_image_pixels: int) -> None:
    """Process-wide Pillow safety settings, installed once per container (or LocalIngest).

    `normalize_image` also checks the pixel count itself, per call, so the
    limit holds even if several configurations share one process.
    """
    Image.MAX_IMAGE_PIXELS = max_image_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def normalize_image(data: bytes, max_image_pixels: int) -> CleanImage:
    """Decode, validate and re-encode one upload; raise ImageRejected with the reason when refused."""
    foreign = _foreign_format(data)
    if foreign is not None:
        raise ImageRejected(
            QuarantineReason.UNSUPPORTED_FORMAT, f"{foreign} is not accepted (JPEG, PNG, WebP)"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_PILLOW_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(
            QuarantineReason.NOT_AN_IMAGE, "content is not a JPEG, PNG or WebP image"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            QuarantineReason.TOO_MANY_PIXELS,
            f"more than {max_image_pixels} pixels (decompression bomb guard)",
        ) from None
    except Exception as error:  # any decoder failure on untrusted bytes means a corrupt file
        raise ImageRejected(
            QuarantineReason.CORRUPT_IMAGE, f"header unreadable ({type(error).__name__})"
        ) from None
    with image:
        source_format = _FORMAT_NAMES.get(image.format, image.format.lower())
        width, height = image.size
        if width * height > max_image_pixels:
            raise ImageRejected(
                QuarantineReason.TOO_MANY_PIXELS, f"{width}x{height} exceeds {max_image_pixels} pixels"
            )
        if min(width, height) < MIN_SIDE_PX:
            raise ImageRejected(
                QuarantineReason.TOO_SMALL, f"{width}x{height}: each side must be >= {MIN_SIDE_PX} px"
            )
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = _to_rgb(upright)
        except Exception as error:  # truncated data, bad Huffman tables, bad EXIF...: the file is corrupt
            raise ImageRejected(
                QuarantineReason.CORRUPT_IMAGE, f"pixels undecodable ({type(error).__name__})"
            ) from None
    return CleanImage(jpeg=_encode_jpeg(rgb), width=rgb.width, height=rgb.height, source_format=source_format)


def _foreign_format(data: bytes) -> str | None:
    for offset, signature, name in _FOREIGN_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return name
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any JPEG/PNG/WebP mode: alpha on white, 16-bit scaled, CMYK/palette converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG: scale 0..65535 to 0..255 instead of clipping everything above 255 to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    return image.convert("RGB")


def _encode_jpeg(rgb: Image.Image) -> bytes:
    """Encode from the raw pixels only, so no metadata chunk of the source can be carried over."""
    pixels_only = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buffer = io.BytesIO()
    pixels_only.save(buffer, format=CLEAN_IMAGE_FORMAT, quality=CLEAN_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()
