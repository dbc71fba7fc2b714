"""`fruits audit-pii` over a real lake (ingested objects, Iceberg tables) locally and on S3 (moto)."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import boto3
import pytest
from PIL import ExifTags, Image, PngImagePlugin

from fruits_cli.main import main
from fruits_core import contracts
from tests.privacy.subject_testkit import SUBJECTS, fill_tables, ingest_subjects

RAW_VALUES = [value for metadata in SUBJECTS.values() for value in metadata.values()]


@pytest.fixture
def known_values(tmp_path):
    path = tmp_path / "known-values.txt"
    path.write_text("\n".join(RAW_VALUES) + "\n")
    return path


@pytest.fixture
def local_lake(tmp_path, sample_image_paths):
    lake_dir = tmp_path / "lake"
    uploads = ingest_subjects(lake_dir, tmp_path / "uploads", sample_image_paths[::13])
    fill_tables(lake_dir, uploads)
    return lake_dir


def audit(lake_uri, known_values, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit-pii", "--lake", lake_uri, "--known-values", str(known_values)])
    return code, capsys.readouterr().out


def test_the_ingested_lake_and_its_tables_hold_no_raw_identifier(local_lake, known_values, capsys):
    code, out = audit(local_lake.as_uri(), known_values, capsys)
    assert code == 0, out
    # the records, the tables' Parquet data files and their metadata were all read
    scanned = int(out.split(" objects scanned")[0].rsplit(" ", 1)[-1])
    records = len(list(local_lake.glob("manifests/dt=*/*.json"))) + len(
        list(local_lake.glob("quarantine/dt=*/*.json"))
    )
    parquet = len(list(local_lake.glob("features/data/**/*.parquet"))) + len(
        list(local_lake.glob("errors/data/**/*.parquet"))
    )
    assert parquet >= 2 and scanned >= records + parquet


def test_a_leaked_value_is_reported_by_place_and_kind_never_by_value(local_lake, known_values, capsys):
    # GIVEN a record where a raw e-mail and an IP leaked into a field
    leaked = local_lake / contracts.QUARANTINE_PREFIX / "dt=2024-05-01" / ("0" * 32 + ".json")
    leaked.parent.mkdir(parents=True, exist_ok=True)
    leaked.write_text(
        json.dumps({"image_id": "0" * 32, "detail": "sent by bob.dupont@example.org from 192.168.1.20"})
    )
    code, out = audit(local_lake.as_uri(), known_values, capsys)
    # THEN the audit fails, naming the object, the field and the kinds, and printing no value
    assert code == 1
    key = leaked.relative_to(local_lake).as_posix()
    for kind in ("email", "ipv4", "known_upload_metadata"):
        assert f"FOUND {kind} in {key} at $.detail" in out
    assert "bob.dupont" not in out and "192.168" not in out


def test_an_s3_lake_is_audited_version_by_version(mocked_aws, capsys, tmp_path, known_values):
    s3 = boto3.client("s3", region_name="eu-west-3")
    s3.create_bucket(
        Bucket="fruits-audit-lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
    )
    s3.put_bucket_versioning(Bucket="fruits-audit-lake", VersioningConfiguration={"Status": "Enabled"})
    key = f"lake/{contracts.MANIFESTS_PREFIX}dt=2024-05-01/{'a' * 32}.json"
    s3.put_object(Bucket="fruits-audit-lake", Key=key, Body=json.dumps({"lat": 48.856613, "label": "apple"}))
    s3.put_object(Bucket="fruits-audit-lake", Key=key, Body=json.dumps({"region": "u09t", "label": "apple"}))
    # WHEN the current version is clean but an older one holds a precise position
    code, out = audit("s3://fruits-audit-lake/lake", known_values, capsys)
    # THEN the older version is found
    assert code == 1
    assert (
        f"FOUND precise_coordinate in {contracts.MANIFESTS_PREFIX}dt=2024-05-01/{'a' * 32}.json at $.lat"
        in out
    )
    # AND once that version is gone, the lake is clean
    versions = s3.list_object_versions(Bucket="fruits-audit-lake", Prefix=key)["Versions"]
    [older] = [version for version in versions if not version["IsLatest"]]
    s3.delete_object(Bucket="fruits-audit-lake", Key=key, VersionId=older["VersionId"])
    assert audit("s3://fruits-audit-lake/lake", known_values, capsys)[0] == 0


def jpeg_with_gps_and_serial(source: bytes) -> bytes:
    """A real photo re-saved with what a phone writes: GPS position, camera serial, owner, XMP."""
    with Image.open(io.BytesIO(source)) as image:
        image.load()
        exif = image.getexif()
        exif[ExifTags.Base.Make] = "DemoPhone"
        exif[ExifTags.Base.Artist] = "Bob Dupont"
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps[ExifTags.GPS.GPSLatitude] = (Fraction(48), Fraction(51), Fraction(2359, 100))
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-4C0FFEE1234"
        out = io.BytesIO()
        image.save(out, format="JPEG", exif=exif, xmp=XMP, quality=90)
    return out.getvalue()


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLongitude="2,21.13E"/>'
    b"<dc:description>contact bob.dupont@example.org</dc:description></rdf:RDF></x:xmpmeta>"
)


def test_an_image_carrying_gps_and_a_camera_serial_is_reported_by_place(
    local_lake, known_values, sample_image_paths, capsys
):
    # GIVEN the ingested lake passes, then a clean image is replaced by one carrying GPS + camera serial
    assert audit(local_lake.as_uri(), known_values, capsys)[0] == 0
    clean = sorted((local_lake / contracts.CLEAN_PREFIX).rglob("*.jpg"))[0]
    clean.write_bytes(jpeg_with_gps_and_serial(sample_image_paths[0].read_bytes()))
    # AND a PNG whose text chunk names its author's e-mail
    png = clean.with_name("stray.png")
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "bob.dupont@example.org")
    Image.new("RGB", (8, 8)).save(png, pnginfo=text)
    # WHEN the lake is audited
    code, out = audit(local_lake.as_uri(), known_values, capsys)
    # THEN each is found by block and tag, and no value is printed
    assert code == 1
    key, png_key = (path.relative_to(local_lake).as_posix() for path in (clean, png))
    for expected in (
        f"FOUND gps_position in {key} at EXIF GPS.GPSLatitude",
        f"FOUND gps_position in {key} at EXIF GPS.GPSLatitudeRef",
        f"FOUND device_serial in {key} at EXIF Exif.BodySerialNumber",
        f"FOUND owner_name in {key} at EXIF Artist",
        f"FOUND gps_position in {key} at XMP exif:GPSLongitude",
        f"FOUND email in {key} at XMP dc:description",
        f"FOUND email in {png_key} at PNG text Author",
    ):
        assert expected in out, out
    assert "EXIF Make" not in out  # a phone's brand alone identifies no one
    for value in ("SN-4C0FFEE1234", "Bob Dupont", "bob.dupont", "23.59", "21.13"):
        assert value not in out, value


def skipped(out: str) -> int:
    return int(out.split(" binary skipped")[0].rsplit(" ", 1)[-1])


def test_an_unreadable_image_is_counted_as_skipped_not_a_crash(local_lake, known_values, capsys):
    before = skipped(audit(local_lake.as_uri(), known_values, capsys)[1])
    (local_lake / contracts.CLEAN_PREFIX / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, out = audit(local_lake.as_uri(), known_values, capsys)
    assert code == 0 and skipped(out) == before + 1
