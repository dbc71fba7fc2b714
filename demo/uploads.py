"""The demo's stand-in for the mobile app: photos with realistic personal metadata.

Every upload carries what a real phone would send: a user id, a device id, GPS
coordinates inside the EU and a capture time, both as S3 user metadata and as
EXIF tags inside the JPEG (GPS IFD, DateTimeOriginal). The pipeline must strip
all of it; the demo and its tests check that none of it reaches the output.
Deterministic for a given seed, so runs are reproducible.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

from PIL import ExifTags, Image

from fruits_core import contracts
from fruits_core.clock import utc_now

APP_VERSION = "2.4.1"
USERS = 5
# (latitude, longitude) of farms' nearest towns: all inside the EU.
EU_PLACES = (
    (48.8566, 2.3522),  # Paris
    (43.6047, 1.4442),  # Toulouse
    (41.3874, 2.1686),  # Barcelona
    (52.5200, 13.4050),  # Berlin
    (45.4642, 9.1900),  # Milan
    (38.7223, -9.1393),  # Lisbon
    (51.9244, 4.4777),  # Rotterdam
)
JITTER_DEGREES = 0.2


@dataclass(frozen=True)
class AppUpload:
    """One photo as the app uploads it: bytes, S3 user metadata and the upload's file name."""

    name: str
    data: bytes
    metadata: dict[str, str]


def find_images(images_dir: Path) -> list[Path]:
    """`<label>/<image>` files under a folder, sorted (the label is the parent folder's name)."""
    return sorted(
        path
        for path in images_dir.glob("*/*")
        if path.is_file() and path.suffix.lower() in contracts.ACCEPTED_UPLOAD_SUFFIXES
    )


def app_uploads(images: list[Path], seed: int = 7, now: datetime | None = None) -> list[AppUpload]:
    """An upload per image with personal metadata (metadata and EXIF agree)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fake data, not security
    now = now or utc_now()
    uploads = []
    for index, path in enumerate(images):
        user = index % USERS
        lat, lon = rng.choice(EU_PLACES)
        lat, lon = (
            round(lat + rng.uniform(-JITTER_DEGREES, JITTER_DEGREES), 6),
            round(lon + rng.uniform(-JITTER_DEGREES, JITTER_DEGREES), 6),
        )
        captured_at = (now - timedelta(minutes=rng.randint(5, 600))).replace(microsecond=0)
        metadata = {
            contracts.META_USER_ID: f"demo-farmer-{user:02d}@example.org",
            contracts.META_DEVICE_ID: f"android-{rng.getrandbits(48):012x}",
            contracts.META_CAPTURED_AT: captured_at.isoformat(),
            contracts.META_LAT: f"{lat:.6f}",
            contracts.META_LON: f"{lon:.6f}",
            contracts.META_LABEL: path.parent.name,
            contracts.META_APP_VERSION: APP_VERSION,
        }
        data = path.read_bytes()
        uploads.append(
            AppUpload(
                name=f"IMG_{index:05d}_{path.parent.name}_{path.name}",
                data=with_gps_exif(data, lat, lon, captured_at),
                metadata=metadata,
            )
        )
    return uploads


def bad_uploads(sample: Path, now: datetime | None = None) -> list[AppUpload]:
    """Uploads the ingest must quarantine: a truncated photo and a text file named like a photo."""
    now = now or utc_now()
    metadata = {
        contracts.META_USER_ID: "demo-farmer-99@example.org",
        contracts.META_CAPTURED_AT: now.replace(microsecond=0).isoformat(),
        contracts.META_APP_VERSION: APP_VERSION,
    }
    photo = sample.read_bytes()
    return [
        AppUpload("IMG_truncated.jpg", photo[: len(photo) // 3], dict(metadata)),
        AppUpload("IMG_notes.jpg", b"shopping list: apples, lemons, mangoes\n", dict(metadata)),
    ]


def with_gps_exif(data: bytes, lat: float, lon: float, captured_at: datetime) -> bytes:
    """The image re-saved with GPS and capture-time EXIF tags (unreadable bytes are returned as they are)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image_format = image.format or "JPEG"
            exif = image.getexif()
            exif[ExifTags.Base.Make] = "DemoPhone"
            exif[ExifTags.Base.Model] = "Fruits! app camera"
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = captured_at.strftime(
                "%Y:%m:%d %H:%M:%S"
            )
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
            gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
            gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
            gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
            gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
            out = io.BytesIO()
            image.save(out, format=image_format, exif=exif, quality=95)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError):
        return data


def _dms(degrees: float) -> tuple[Fraction, Fraction, Fraction]:
    """Decimal degrees -> EXIF (degrees, minutes, seconds) rationals."""
    value = abs(degrees)
    whole = int(value)
    minutes_float = (value - whole) * 60
    minutes = int(minutes_float)
    seconds = Fraction(round((minutes_float - minutes) * 60 * 10000), 10000)
    return Fraction(whole), Fraction(minutes), seconds
