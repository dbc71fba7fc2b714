"""Decode an untrusted upload with Pillow and re-encode it as a clean RGB JPEG.

Only the JPEG, PNG and WebP decoders are ever used (several recent Pillow
decompression-bomb CVEs were in other formats). The pixels are really decoded
(`load()`, not `verify()`), EXIF orientation is applied, and the result is
built from the pixels alone, so no EXIF, GPS, ICC, XMP or comment survives.

Work is bounded before decoding (preflight structure counts, sides, pixels),
and memory during it: the clean image is at most CLEAN_IMAGE_MAX_SIDE_PX on
its long side, so a large JPEG is decoded at 1/2 to 1/8 scale (libjpeg DCT
scaling, `draft`) and any other image is shrunk right after decoding, before
the colour conversions that each make a copy.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from fruits_core.contracts import CLEAN_IMAGE_FORMAT, CLEAN_IMAGE_MAX_SIDE_PX, QuarantineReason
from fruits_core.contracts import IMAGE_PILLOW_FORMATS as ALLOWED_PILLOW_FORMATS
from fruits_ingest.preflight import PNG_SIGNATURE, structure_problem, without_png_metadata

MIN_SIDE_PX = 32
# libjpeg cannot encode a side over 65,500 px (JPEG_MAX_DIMENSION); refuse such inputs up front.
MAX_SIDE_PX = 65_500
# PNG text chunks are never kept: decompress little of them (Pillow's defaults are 1 MiB / 64 MiB).
MAX_PNG_TEXT_CHUNK_BYTES = 64 * 1024
MAX_PNG_TEXT_MEMORY_BYTES = 1024 * 1024
CLEAN_JPEG_QUALITY = 85
_WHITE = (255, 255, 255)
# Pillow reports JPEGs with a multi-picture index (phone cameras write them) as MPO.
_FORMAT_NAMES = {"MPO": "jpeg"}
EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Pillow resizes with any filter; others (palette, 1-bit, CMYK...) are converted first.
_RESAMPLABLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F", "I;16")

# Magic numbers of image formats we refuse: they are "unsupported", not "not an image".
_FOREIGN_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"II+\x00", "bigtiff"),
    (0, b"MM\x00+", "bigtiff"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (0, b"8BPS", "psd"),
    (0, b"\xff\x0a", "jpeg-xl"),
    (0, b"\x00\x00\x00\x0cJXL ", "jpeg-xl"),
    (0, b"%PDF", "pdf"),
    (4, b"ftypheic", "heic"),
    (4, b"ftypheix", "heic"),
    (4, b"ftypmif1", "heif"),
    (4, b"ftypmif2", "heif"),
    (4, b"ftypmiaf", "heif"),
    (4, b"ftypheim", "heif"),
    (4, b"ftypheis", "heif"),
    (4, b"ftyphevc", "heif"),
    (4, b"ftypmsf1", "heif"),
    (4, b"ftypavif", "avif"),
    (4, b"ftypavis", "avif"),
    # Any other ISO base media file (HEIF/AVIF brands to come, MP4, QuickTime...): never accepted.
    (4, b"ftyp", "iso-bmff"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg-2000"),
    (0, b"\xff\x4f\xff\x51", "jpeg-2000"),
    (0, b"qoif", "qoi"),
    (0, b"P1", "pnm"),
    (0, b"P2", "pnm"),
    (0, b"P3", "pnm"),
    (0, b"P4", "pnm"),
    (0, b"P5", "pnm"),
    (0, b"P6", "pnm"),
    (0, b"P7", "pam"),
    (0, b"Pf", "pfm"),
    (0, b"PF", "pfm"),
)
# TGA has no magic number; its footer (TGA 2.0) or a plausible header marks it.
_TGA_FOOTER = b"TRUEVISION-XFILE.\x00"
_TGA_IMAGE_TYPES = {1, 2, 3, 9, 10, 11}


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
    PngImagePlugin.MAX_TEXT_CHUNK = MAX_PNG_TEXT_CHUNK_BYTES
    PngImagePlugin.MAX_TEXT_MEMORY = MAX_PNG_TEXT_MEMORY_BYTES
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def normalize_image(data: bytes, max_image_pixels: int) -> CleanImage:
    """Decode, validate and re-encode one upload; raise ImageRejected with the reason when refused."""
    foreign = _foreign_format(data)
    if foreign is not None:
        raise ImageRejected(
            QuarantineReason.UNSUPPORTED_FORMAT, f"{foreign} is not accepted (JPEG, PNG, WebP)"
        )
    problem = structure_problem(data)
    if problem is not None:
        raise ImageRejected(QuarantineReason.TOO_COMPLEX, problem)
    if data.startswith(PNG_SIGNATURE):
        data = without_png_metadata(data)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_PILLOW_FORMATS)
    except UnidentifiedImageError:
        if _starts_like_an_accepted_format(data):
            raise ImageRejected(
                QuarantineReason.CORRUPT_IMAGE, "header of a JPEG or PNG that cannot be read"
            ) from None
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
        _check_dimensions(*image.size, max_image_pixels)
        try:
            orientation = image.getexif().get(EXIF_ORIENTATION_TAG)
            rgb = _decode_small_rgb(image)
            upright = rgb.transpose(_ORIENTATIONS[orientation]) if orientation in _ORIENTATIONS else rgb
        except Exception as error:  # truncated data, bad Huffman tables, bad EXIF...: the file is corrupt
            raise ImageRejected(
                QuarantineReason.CORRUPT_IMAGE, f"pixels undecodable ({type(error).__name__})"
            ) from None
    return CleanImage(
        jpeg=_encode_jpeg(upright), width=upright.width, height=upright.height, source_format=source_format
    )


def clean_size(width: int, height: int) -> tuple[int, int]:
    """Size of the clean image: the upload's, shrunk to fit CLEAN_IMAGE_MAX_SIDE_PX (never enlarged)."""
    scale = min(1.0, CLEAN_IMAGE_MAX_SIDE_PX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_dimensions(width: int, height: int, max_image_pixels: int) -> None:
    if max(width, height) > MAX_SIDE_PX:
        raise ImageRejected(
            QuarantineReason.SIDE_TOO_LONG, f"{width}x{height}: each side must be <= {MAX_SIDE_PX} px"
        )
    if width * height > max_image_pixels:
        raise ImageRejected(
            QuarantineReason.TOO_MANY_PIXELS, f"{width}x{height} exceeds {max_image_pixels} pixels"
        )
    if min(width, height) < MIN_SIDE_PX:
        raise ImageRejected(
            QuarantineReason.TOO_SMALL, f"{width}x{height}: each side must be >= {MIN_SIDE_PX} px"
        )


def _decode_small_rgb(image: Image.Image) -> Image.Image:
    """Decode at the clean size: DCT scaling for JPEG, else shrink the decoded frame before converting."""
    target = clean_size(*image.size)
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", target)
    image.load()
    if image.size != target:
        image = _shrink(image, target)
    return _to_rgb(image)


def _shrink(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Box reduction by an integer factor first (cheap, small output), then an exact resample."""
    if image.mode not in _RESAMPLABLE_MODES:
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _foreign_format(data: bytes) -> str | None:
    for offset, signature, name in _FOREIGN_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return name
    return "tga" if _looks_like_tga(data) else None


def _starts_like_an_accepted_format(data: bytes) -> bool:
    """A PNG signature and IHDR, or a JPEG SOI and a real marker: Pillow refused a file of our formats
    (a 12-bit JPEG, a bad checksum in a PNG chunk), so it is corrupt, not "not an image"."""
    if data.startswith(PNG_SIGNATURE):
        return data[12:16] == b"IHDR"
    return data.startswith(b"\xff\xd8\xff") and len(data) > 3 and data[3] >= 0xC0 and data[3] != 0xFF


def _looks_like_tga(data: bytes) -> bool:
    """TGA 2.0 footer, or a TGA 1.0 header: colour map type 0/1, a known image type, 8-32 bits per pixel."""
    if data.endswith(_TGA_FOOTER):
        return True
    if len(data) < 18 or data.startswith((b"\xff\xd8", b"\x89PNG", b"RIFF")):
        return False
    return data[1] in (0, 1) and data[2] in _TGA_IMAGE_TYPES and data[16] in (8, 15, 16, 24, 32)


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
    """Encode from the raw pixels only, so no metadata chunk of the source can be carried over.

    The copy through `tobytes` costs little: the image is already at most the clean size.
    """
    pixels_only = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buffer = io.BytesIO()
    pixels_only.save(buffer, format=CLEAN_IMAGE_FORMAT, quality=CLEAN_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()
