"""The bad-input corpus: uploads derived from a real sample JPEG, each with its expected outcome.

Every case must end accepted-and-normalized, quarantined with its reason, or
skipped (the object is gone); none may crash the handler or fail the batch.
The bombs are built here, at test time (small files announcing big work).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.header import Header

from PIL import Image, ImageCms

from fruits_core.contracts import QuarantineReason as R
from fruits_core.contracts import SkipReason

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The ingest's default pixel limit (40 MP), which the Pillow tests decode under.
PIXEL_LIMIT = 40_000_000
EXIF_ORIENTATION_TAG = 0x0112
EXIF_GPS_IFD = 0x8825


def pixels(real_jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(real_jpeg)).convert("RGB")


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG announcing `width` x `height` pixels with almost no data: the classic decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_48_bit(real_jpeg: bytes) -> bytes:
    """16 bits per channel RGB PNG (Pillow cannot write one, so it is assembled by hand)."""
    image = pixels(real_jpeg)
    rows = b"".join(
        b"\x00"
        + b"".join(
            struct.pack(">HHH", *(c * 257 for c in image.getpixel((x, y)))) for x in range(image.width)
        )
        for y in range(image.height)
    )
    header = struct.pack(">IIBBBBB", image.width, image.height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def png_16_bit_grey(real_jpeg: bytes) -> bytes:
    grey16 = pixels(real_jpeg).convert("L").convert("I").point(lambda value: value * 257).convert("I;16")
    return encode(grey16, "PNG")


def png_with_alpha(real_jpeg: bytes) -> bytes:
    """Left half fully transparent: it must come out white, not black."""
    rgba = pixels(real_jpeg).convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, rgba.width // 2, rgba.height))
    rgba.putalpha(alpha)
    return encode(rgba, "PNG")


def palette_png_with_transparency(real_jpeg: bytes) -> bytes:
    palette = pixels(real_jpeg).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(palette, "PNG", transparency=0)


def jpeg_with_personal_metadata(real_jpeg: bytes) -> bytes:
    """A 100x60 photo rotated by EXIF (orientation 6), with GPS, an ICC profile and a comment."""
    image = pixels(real_jpeg).crop((0, 20, 100, 80))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0131] = "Camera 1.0 owner Jane Doe"  # Software
    exif.get_ifd(EXIF_GPS_IFD).update({1: "N", 2: (48.0, 51.0, 23.8), 3: "E", 4: (2.0, 21.0, 7.9)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(image, "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"shot by Jane Doe")


def multi_picture_jpeg(real_jpeg: bytes) -> bytes:
    """What many phone cameras write: a JPEG with a second picture (MPO); Pillow names it "MPO"."""
    frame = pixels(real_jpeg)
    return encode(frame, "MPO", save_all=True, append_images=[frame.rotate(180)])


def animated_gif(real_jpeg: bytes) -> bytes:
    frame = pixels(real_jpeg)
    return encode(frame, "GIF", save_all=True, append_images=[frame.rotate(90)], loop=0)


def corrupt_png_data(real_jpeg: bytes) -> bytes:
    data = bytearray(encode(pixels(real_jpeg), "PNG"))
    start = data.index(b"IDAT") + 20
    for position in range(start, start + 40):
        data[position] ^= 0x5A
    return bytes(data)


def oversize_jpeg(real_jpeg: bytes) -> bytes:
    """A valid JPEG padded past the upload limit (trailing bytes after EOI are legal)."""
    return real_jpeg + b"\x00" * (MAX_UPLOAD_BYTES + 1 - len(real_jpeg))


def progressive_bomb(real_jpeg: bytes, scans: int = 5_000) -> bytes:
    """A progressive JPEG whose last scan is repeated: libjpeg walks every block again for each one."""
    data = encode(pixels(real_jpeg), "JPEG", progressive=True)
    last_scan = data.rindex(b"\xff\xda")
    return data[:last_scan] + data[last_scan:-2] * scans + b"\xff\xd9"


def empty_scan_bomb(real_jpeg: bytes, scans: int) -> bytes:
    """A progressive JPEG whose last scan header is repeated with no data: about 14 bytes per scan."""
    data = encode(pixels(real_jpeg), "JPEG", progressive=True)
    last_scan = data.rindex(b"\xff\xda")
    header = data[last_scan : last_scan + 2 + int.from_bytes(data[last_scan + 2 : last_scan + 4], "big")]
    return data[:last_scan] + header * scans + data[last_scan:]


def scan_bomb_with_junk(real_jpeg: bytes, scans: int = 30_000) -> bytes:
    """The empty-scan bomb with one 0x00 after its first segment: libjpeg skips it and decodes every scan."""
    data = empty_scan_bomb(real_jpeg, scans)
    first_segment_end = 4 + int.from_bytes(data[4:6], "big")
    return data[:first_segment_end] + b"\x00" + data[first_segment_end:]


def scan_bomb_with_fill_and_stray_markers(real_jpeg: bytes, scans: int = 5_000) -> bytes:
    """Every scan preceded by 0xFF fill, a stuffed zero and a restart marker, all of which libjpeg skips."""
    data = progressive_bomb(real_jpeg, scans)
    return data.replace(b"\xff\xda", b"\xff\xff\x00\xff\xd0\xff\xff\xda")


def jpeg_header_junk(real_jpeg: bytes) -> bytes:
    """200 KiB of 0xFF fill before the first marker: Pillow's header parser walks it in Python."""
    first_segment_end = 4 + int.from_bytes(real_jpeg[4:6], "big")
    return real_jpeg[:first_segment_end] + b"\xff" * (200 * 1024) + real_jpeg[first_segment_end:]


def jpeg_junk_between_segments(real_jpeg: bytes) -> bytes:
    """A few junk and fill bytes between segments (some encoders pad): libjpeg skips them, so must we."""
    first_segment_end = 4 + int.from_bytes(real_jpeg[4:6], "big")
    return real_jpeg[:first_segment_end] + b"\x00\x00\xff\xff" + real_jpeg[first_segment_end:]


def png_many_chunks(real_jpeg: bytes) -> bytes:
    """The same pixels with the image data split into 1-byte IDAT chunks (thousands of chunks)."""
    data = encode(pixels(real_jpeg), "PNG")
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    payload = data[start + 8 : start + 8 + length]
    chunks = b"".join(png_chunk(b"IDAT", payload[i : i + 1]) for i in range(len(payload)))
    return data[:start] + chunks + data[start + 12 + length :]


def solid_png(width: int, height: int) -> bytes:
    """A real (fully decodable) PNG of one colour: tiny file, any size."""
    return encode(Image.new("RGB", (width, height), (220, 40, 60)), "PNG")


def qoi(_: bytes) -> bytes:
    """A 64x64 QOI image: header, one RGB pixel, a run for the rest, end marker."""
    header = b"qoif" + struct.pack(">IIBB", 64, 64, 3, 0)
    ops = b"\xfe\xdc\x28\x3c" + b"\xfd" * (64 * 64 // 62) + bytes([0xC0 | (64 * 64 % 62 - 2)])
    return header + ops + b"\x00" * 7 + b"\x01"


def iso_bmff(brand: bytes) -> bytes:
    """The start of a HEIF/AVIF file: an ftyp box with the given major brand."""
    return b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1" + brand + b"\x00" * 64


def png_with_chunk(real_jpeg: bytes, kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """The photo as a PNG with one more chunk after IHDR (its CRC right, or `crc` when given)."""
    png = encode(pixels(real_jpeg), "PNG")
    chunk = (
        png_chunk(kind, data)
        if crc is None
        else struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    )
    return png[:33] + chunk + png[33:]


def png_large_icc(real_jpeg: bytes) -> bytes:
    """A real sRGB profile grown to 180 KB (a private tag area, as some camera apps write)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grown = profile + bytes(range(256)) * ((180_000 - len(profile)) // 256)
    return png_with_chunk(real_jpeg, b"iCCP", b"sRGB\x00\x00" + zlib.compress(grown))


def png_large_xmp(real_jpeg: bytes) -> bytes:
    """1.2 MB of XMP in an uncompressed iTXt chunk (editing history from a desktop editor)."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<rdf:li>step</rdf:li>" * 57_000 + b"</x:xmpmeta>"
    return png_with_chunk(real_jpeg, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)


def png_large_exif(real_jpeg: bytes) -> bytes:
    """A 600 KB eXIf chunk (maker notes) that also carries an orientation."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 1
    exif[0x927C] = b"\x00" * 600_000  # MakerNote
    return png_with_chunk(real_jpeg, b"eXIf", exif.tobytes()[6:])


def jpeg_12_bit(real_jpeg: bytes) -> bytes:
    """The photo's SOF says 12 bits per sample: Pillow cannot decode it, so it is corrupt for us."""
    sof = real_jpeg.index(b"\xff\xc0")
    return real_jpeg[: sof + 4] + b"\x0c" + real_jpeg[sof + 5 :]


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[bytes], bytes]
    reason: R | None = None  # None: accepted
    key: str = "uploads/photo.jpg"
    metadata: dict[str, str] = field(default_factory=dict)
    expected_format: str = "jpeg"
    expected_size: tuple[int, int] = (100, 100)
    expected_label: str | None = None
    # What happens to the object after its event and before the function runs: "delete",
    # "delete-versioned" (a delete marker hides it), "overwrite" (replaced before processing).
    then: str | None = None
    skip: SkipReason | None = None


def rfc2047(text: str) -> str:
    return Header(text, "utf-8").encode()


def same(real_jpeg: bytes) -> bytes:
    return real_jpeg


CORPUS: tuple[Case, ...] = (
    # --- bytes that are not an acceptable image ---
    Case("zero-bytes", lambda _: b"", R.EMPTY_FILE),
    Case("text-named-jpg", lambda _: b"GET /admin HTTP/1.1\r\nnot a picture\r\n", R.NOT_AN_IMAGE),
    Case("jpeg-magic-then-garbage", lambda _: b"\xff\xd8\xff" + bytes(range(256)) * 4, R.NOT_AN_IMAGE),
    Case("truncated-jpeg", lambda real: real[: len(real) * 6 // 10], R.CORRUPT_IMAGE),
    Case("png-corrupt-pixel-data", corrupt_png_data, R.CORRUPT_IMAGE, key="uploads/photo.png"),
    Case("animated-gif-named-jpg", animated_gif, R.UNSUPPORTED_FORMAT),
    Case(
        "bmp-named-png", lambda real: encode(pixels(real), "BMP"), R.UNSUPPORTED_FORMAT, key="uploads/p.png"
    ),
    Case(
        "heic-named-jpg",
        lambda _: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        R.UNSUPPORTED_FORMAT,
    ),
    Case(
        "bomb-2500-megapixels",
        lambda _: png_header_only(50_000, 50_000),
        R.TOO_MANY_PIXELS,
        key="uploads/b.png",
    ),
    Case(
        "bomb-49-megapixels", lambda _: png_header_only(7_000, 7_000), R.TOO_MANY_PIXELS, key="uploads/b.png"
    ),
    Case("over-10-mib", oversize_jpeg, R.TOO_LARGE),
    Case("16x16-thumbnail", lambda real: encode(pixels(real).resize((16, 16)), "PNG"), R.TOO_SMALL),
    Case("jpeg-2000-named-jpg", lambda real: encode(pixels(real), "JPEG2000"), R.UNSUPPORTED_FORMAT),
    Case(
        "jpeg-2000-codestream",
        lambda real: encode(pixels(real), "JPEG2000", no_jp2=True),
        R.UNSUPPORTED_FORMAT,
    ),
    Case("heif-heim-named-jpg", lambda _: iso_bmff(b"heim"), R.UNSUPPORTED_FORMAT),
    Case("heif-mif2-named-jpg", lambda _: iso_bmff(b"mif2"), R.UNSUPPORTED_FORMAT),
    Case("heif-miaf-named-jpg", lambda _: iso_bmff(b"miaf"), R.UNSUPPORTED_FORMAT),
    Case("mp4-video-named-jpg", lambda _: iso_bmff(b"isom"), R.UNSUPPORTED_FORMAT),
    Case("bigtiff-le-named-jpg", lambda _: b"II+\x00\x08\x00\x00\x00" + b"\x00" * 64, R.UNSUPPORTED_FORMAT),
    Case("bigtiff-be-named-jpg", lambda _: b"MM\x00+\x00\x08\x00\x00" + b"\x00" * 64, R.UNSUPPORTED_FORMAT),
    Case("jpeg-12-bit", jpeg_12_bit, R.CORRUPT_IMAGE),
    Case(
        "png-bad-crc-in-kept-ancillary-chunk",
        lambda real: png_with_chunk(real, b"pHYs", struct.pack(">IIB", 2835, 2835, 1), crc=0),
        R.CORRUPT_IMAGE,
        key="uploads/p.png",
    ),
    Case("heif-msf1-named-jpg", lambda _: iso_bmff(b"msf1"), R.UNSUPPORTED_FORMAT),
    Case("avif-sequence-named-jpg", lambda _: iso_bmff(b"avis"), R.UNSUPPORTED_FORMAT),
    Case("ppm-named-jpg", lambda real: encode(pixels(real), "PPM"), R.UNSUPPORTED_FORMAT),
    Case("tga-named-jpg", lambda real: encode(pixels(real), "TGA"), R.UNSUPPORTED_FORMAT),
    Case("qoi-named-png", qoi, R.UNSUPPORTED_FORMAT, key="uploads/q.png"),
    # --- bounded work: CPU and memory bombs, encoder limits ---
    Case("progressive-jpeg-5000-scans", progressive_bomb, R.TOO_COMPLEX),
    Case("progressive-jpeg-30000-scans-one-junk-byte", scan_bomb_with_junk, R.TOO_COMPLEX),
    Case("progressive-jpeg-scans-behind-fill-and-rst", scan_bomb_with_fill_and_stray_markers, R.TOO_COMPLEX),
    Case("jpeg-200-kib-fill-before-first-scan", jpeg_header_junk, R.TOO_COMPLEX),
    Case("jpeg-junk-byte-between-segments", jpeg_junk_between_segments),
    Case("png-thousands-of-chunks", png_many_chunks, R.TOO_COMPLEX, key="uploads/c.png"),
    Case("png-70000x32", lambda _: solid_png(70_000, 32), R.SIDE_TOO_LONG, key="uploads/w.png"),
    Case("png-32x70000", lambda _: solid_png(32, 70_000), R.SIDE_TOO_LONG, key="uploads/t.png"),
    Case("png-65501x32", lambda _: solid_png(65_501, 32), R.SIDE_TOO_LONG, key="uploads/w.png"),
    Case(
        "png-65500x32-at-the-limit",
        lambda _: solid_png(65_500, 32),
        key="uploads/w.png",
        expected_format="png",
        expected_size=(448, 1),
    ),
    Case(
        "progressive-jpeg-100-scans",
        lambda real: progressive_bomb(real, scans=90),
    ),
    # --- gone before processing: skipped, no record, no retry ---
    Case("deleted-before-processing", same, then="delete", skip=SkipReason.UPLOAD_MISSING),
    Case("delete-marker", same, then="delete-versioned", skip=SkipReason.UPLOAD_DELETED),
    Case("overwritten-before-processing", same, then="overwrite", skip=SkipReason.UPLOAD_SUPERSEDED),
    Case("gif-suffix", same, R.UNSUPPORTED_KEY, key="uploads/photo.gif"),
    Case("outside-uploads-prefix", same, R.UNSUPPORTED_KEY, key="incoming/photo.jpg"),
    # --- unusual but acceptable images: normalized to RGB JPEG ---
    Case("png-with-alpha", png_with_alpha, key="uploads/alpha.png", expected_format="png"),
    Case(
        "palette-png-transparency", palette_png_with_transparency, key="uploads/p.png", expected_format="png"
    ),
    Case("cmyk-jpeg", lambda real: encode(pixels(real).convert("CMYK"), "JPEG")),
    Case("mpo-multi-picture-jpeg", multi_picture_jpeg),
    Case("greyscale-jpeg", lambda real: encode(pixels(real).convert("L"), "JPEG")),
    Case("16-bit-grey-png", png_16_bit_grey, key="uploads/g16.png", expected_format="png"),
    Case("48-bit-rgb-png", png_48_bit, key="uploads/rgb48.png", expected_format="png"),
    Case("webp", lambda real: encode(pixels(real), "WEBP"), key="uploads/photo.webp", expected_format="webp"),
    Case("png-content-named-jpg", lambda real: encode(pixels(real), "PNG"), expected_format="png"),
    Case("png-180-kb-icc-profile", png_large_icc, key="uploads/icc.png", expected_format="png"),
    Case("png-1.2-mb-xmp", png_large_xmp, key="uploads/xmp.png", expected_format="png"),
    Case("png-600-kb-exif", png_large_exif, key="uploads/exif.png", expected_format="png"),
    Case(
        "png-bad-crc-in-dropped-text-chunk",
        lambda real: png_with_chunk(real, b"tEXt", b"Comment\x00hello", crc=0),
        key="uploads/t.png",
        expected_format="png",
    ),
    Case("exif-rotated-with-gps-icc", jpeg_with_personal_metadata, expected_size=(60, 100)),
    Case("space-and-upper-suffix-key", same, key="uploads/My Photo (1).JPG"),
    Case("unicode-key", same, key="uploads/pêche été 🍑 +%20.jpeg"),
    # --- metadata ---
    Case("label-normalized", same, metadata={"label": "  Red   Apple "}, expected_label="red-apple"),
    # S3 hands non-ASCII metadata back RFC 2047-encoded.
    Case("label-accented", same, metadata={"label": rfc2047("Pêche de vigne")}, expected_label="vine-peach"),
    Case("label-cyrillic", same, metadata={"label": rfc2047("Яблоко")}, expected_label="apple"),
    Case("label-greek", same, metadata={"label": rfc2047("Λεμόνι")}, expected_label="lemon"),
    Case("label-arabic", same, metadata={"label": rfc2047("مانجو")}, expected_label="mango"),
    Case("label-japanese", same, metadata={"label": rfc2047("ラズベリー")}, expected_label="raspberry"),
    Case("label-emoji", same, metadata={"label": rfc2047("🍓")}, expected_label="strawberry"),
    # Free text outside the vocabulary: the photo is kept, the text is not.
    Case("label-name-and-phone", same, metadata={"label": "Jane Doe 0612345678"}),
    Case("label-markup", same, metadata={"label": "<script>alert(1)</script>"}),
    Case("label-path", same, metadata={"label": "../../etc/passwd"}),
    Case("label-template", same, metadata={"label": "${jndi:ldap://x/a}"}),
    Case("label-sql", same, metadata={"label": "apple'; DROP TABLE labels;--"}),
    Case("label-only-dashes", same, metadata={"label": "---"}),
    Case("user-id-too-long", same, R.INVALID_METADATA, metadata={"user-id": "u" * 129}),
    Case("device-id-too-long", same, R.INVALID_METADATA, metadata={"device-id": "d" * 129}),
    Case("captured-at-not-a-date", same, R.INVALID_METADATA, metadata={"captured-at": "yesterday"}),
    Case("captured-at-no-offset", same, R.INVALID_METADATA, metadata={"captured-at": "2025-06-13T18:47:53"}),
    Case(
        "captured-at-far-future", same, R.INVALID_METADATA, metadata={"captured-at": "2999-01-01T00:00:00Z"}
    ),
    Case("captured-at-1999", same, R.INVALID_METADATA, metadata={"captured-at": "1999-12-31T23:00:00Z"}),
    Case("lat-without-lon", same, R.INVALID_METADATA, metadata={"lat": "48.85"}),
    Case("lat-out-of-range", same, R.INVALID_METADATA, metadata={"lat": "91.5", "lon": "2.35"}),
    Case("lon-not-a-number", same, R.INVALID_METADATA, metadata={"lat": "48.85", "lon": "east"}),
    Case("lat-nan", same, R.INVALID_METADATA, metadata={"lat": "nan", "lon": "2.35"}),
    Case("app-version-injection", same, R.INVALID_METADATA, metadata={"app-version": "1.0; rm -rf /"}),
    Case(
        "app-version-arabic-digits",
        same,
        R.INVALID_METADATA,
        metadata={"app-version": rfc2047("\u0661.\u0662.\u0663")},
    ),
    Case(
        "app-version-fullwidth-digits",
        same,
        R.INVALID_METADATA,
        metadata={"app-version": rfc2047("\uff11.0.0")},
    ),
    Case(
        "lat-devanagari-digits", same, R.INVALID_METADATA, metadata={"lat": rfc2047("४८.८५"), "lon": "2.35"}
    ),
    Case("app-version-device-suffix", same, R.INVALID_METADATA, metadata={"app-version": "2.3.1-SM-G991B"}),
)
