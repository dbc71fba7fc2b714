"""The metadata an image file carries beside its pixels, as (place, kind, value) for `fruits audit-pii`.

A clean image is re-encoded from pixels only, so it should carry none; an upload or a stray copy
may carry a phone's GPS position, its serial number, its owner's name. Pillow reads EXIF (base,
Exif, GPS and Interop IFDs), XMP, IPTC, the ICC profile's text and PNG text chunks. A field is
classified by its name (any GPS tag is a position, a serial number names a device...); its value
goes through the audit's text detectors too. The place names the block and the tag, never the value.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, IptcImagePlugin, UnidentifiedImageError

GPS_POSITION = "gps_position"
DEVICE_SERIAL = "device_serial"
OWNER_NAME = "owner_name"
CAPTURE_TIME = "capture_time"
MAKER_NOTE = "maker_note"

# Tag names (EXIF, XMP local names, lower case) that are personal whatever their value.
_NAMED_KINDS = {
    "bodyserialnumber": DEVICE_SERIAL,
    "cameraserialnumber": DEVICE_SERIAL,
    "lensserialnumber": DEVICE_SERIAL,
    "serialnumber": DEVICE_SERIAL,
    "imageuniqueid": DEVICE_SERIAL,
    "artist": OWNER_NAME,
    "cameraownername": OWNER_NAME,
    "ownername": OWNER_NAME,
    "creator": OWNER_NAME,
    "copyright": OWNER_NAME,
    "xpauthor": OWNER_NAME,
    "datetimeoriginal": CAPTURE_TIME,
    "datetimedigitized": CAPTURE_TIME,
    "createdate": CAPTURE_TIME,
    "datecreated": CAPTURE_TIME,
    "makernote": MAKER_NOTE,
}
# IPTC (record 2) datasets: by-line, by-line title, copyright notice, contact; date created.
_IPTC_KINDS = {80: OWNER_NAME, 85: OWNER_NAME, 116: OWNER_NAME, 118: OWNER_NAME, 55: CAPTURE_TIME}
_IFDS = (
    ("Exif", ExifTags.IFD.Exif, ExifTags.TAGS),
    ("GPS", ExifTags.IFD.GPSInfo, ExifTags.GPSTAGS),
    ("Interop", ExifTags.IFD.Interop, ExifTags.TAGS),
)
# XMP without an XML parser (no entity expansion on untrusted bytes): prefix:Name="value"
# attributes and <prefix:Name>value</prefix:Name> elements.
_XMP_ATTRIBUTE = re.compile(r"([A-Za-z][\w.-]*):([A-Za-z][\w.-]*)=\"([^\"]*)\"")
_XMP_ELEMENT = re.compile(r"<([A-Za-z][\w.-]*):([A-Za-z][\w.-]*)(?:\s[^>]*)?>([^<]+)</\1:\2>")
_ICC_TEXT_FIELDS = ("profile_description", "copyright", "manufacturer", "model")


@dataclass(frozen=True)
class MetadataField:
    place: str  # e.g. "EXIF GPS.GPSLatitude", "XMP exif:GPSLatitude", "PNG text Comment"
    kind: str | None  # personal by its name alone, else None (the value is still searched)
    value: Any


class NotAnImage(ValueError):
    """Pillow cannot open the bytes (a corrupt or foreign file with an image's suffix)."""


def metadata_fields(data: bytes) -> Iterator[MetadataField]:
    """Every metadata field of one image file; NotAnImage when Pillow cannot open it."""
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise NotAnImage(type(error).__name__) from None
    with image:
        fields = [
            *_exif_fields(image),
            *_xmp_fields(image),
            *_iptc_fields(image),
            *_icc_fields(image),
            *_text_chunk_fields(image),
        ]
    yield from fields


def _kind_of(name: str) -> str | None:
    return _NAMED_KINDS.get(name.lower())


def _exif_fields(image: Image.Image) -> Iterator[MetadataField]:
    try:
        exif = image.getexif()
    except Exception:  # a malformed EXIF block on untrusted bytes: nothing readable
        return
    for tag, value in exif.items():
        if tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop):
            continue
        name = ExifTags.TAGS.get(tag, f"0x{tag:04x}")
        yield MetadataField(f"EXIF {name}", _kind_of(name), value)
    for block, ifd, names in _IFDS:
        try:
            entries = exif.get_ifd(ifd)
        except Exception:  # noqa: S112 - one unreadable IFD does not hide the others
            continue
        for tag, value in entries.items():
            name = names.get(tag, f"0x{tag:04x}")
            kind = GPS_POSITION if block == "GPS" and name != "GPSVersionID" else _kind_of(name)
            yield MetadataField(f"EXIF {block}.{name}", kind, value)


def _xmp_fields(image: Image.Image) -> Iterator[MetadataField]:
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not raw:
        return
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for pattern in (_XMP_ATTRIBUTE, _XMP_ELEMENT):
        for match in pattern.finditer(text):
            prefix, name, value = match.group(1), match.group(2), match.group(3)
            if prefix in ("xmlns", "x", "rdf"):
                continue
            kind = GPS_POSITION if name.startswith("GPS") and name != "GPSVersionID" else _kind_of(name)
            yield MetadataField(f"XMP {prefix}:{name}", kind, value)


def _iptc_fields(image: Image.Image) -> Iterator[MetadataField]:
    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # a malformed IPTC block: nothing readable
        return
    for (record, dataset), value in info.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            kind = _IPTC_KINDS.get(dataset) if record == 2 else None
            yield MetadataField(f"IPTC {record}:{dataset}", kind, text)


def _icc_fields(image: Image.Image) -> Iterator[MetadataField]:
    icc = image.info.get("icc_profile")
    if not icc:
        return
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    except Exception:  # an unreadable profile: its printable strings instead
        yield MetadataField("ICC profile", None, " ".join(re.findall(rb"[ -~]{6,}", icc)[:50]).decode())
        return
    for name in _ICC_TEXT_FIELDS:
        value = getattr(profile, name, None)
        if value:
            yield MetadataField(f"ICC profile.{name}", None, value)


def _text_chunk_fields(image: Image.Image) -> Iterator[MetadataField]:
    chunks = getattr(image, "text", None) or {}
    for keyword, value in chunks.items():
        yield MetadataField(f"PNG text {keyword}", _kind_of(keyword), value)
