"""`fruits audit-pii`: every stored version of every lake object, searched for raw identifiers.

JSON objects are walked leaf by leaf (a finding names the field path), Parquet files
(the tables' data files, live or not yet expired) column by column, other UTF-8 objects
line by line, images by their metadata (EXIF, XMP, IPTC, ICC, PNG text: fruits_privacy/
image_metadata.py; a GPS tag or a camera serial is a finding whatever its value). Other binary
objects (models, Avro manifests, Spark state) are counted as skipped: they hold no upload metadata.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fruits_privacy.image_metadata import NotAnImage, metadata_fields
from fruits_privacy.lake_objects import LakeObjects, StoredVersion
from fruits_privacy.pii_detectors import detect, detect_known, detect_number

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_BINARY_SUFFIXES = (".tflite", ".keras", ".avro", ".db", ".zip", ".crc")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Finding:
    """Where a raw identifier was found: the object, the field or column (or line), its kind."""

    key: str
    location: str
    kind: str


@dataclass
class AuditReport:
    scanned: int = 0
    skipped: int = 0
    findings: list[Finding] = field(default_factory=list)


def audit_lake(objects: LakeObjects, known_values: frozenset[str]) -> AuditReport:
    report = AuditReport()
    for version in objects.versions(""):
        if version.key.lower().endswith(_BINARY_SUFFIXES):
            report.skipped += 1
            continue
        data = objects.read(version)
        if version.key.lower().endswith(_IMAGE_SUFFIXES):
            findings = _image_findings(version.key, data, known_values)
            if findings is None:
                report.skipped += 1
            else:
                report.scanned += 1
                report.findings += findings
            continue
        values = _values(version, data)
        if values is None:
            report.skipped += 1
            continue
        report.scanned += 1
        report.findings += _findings(version.key, values, known_values)
    return report


def _values(version: StoredVersion, data: bytes) -> Iterator[tuple[str, Any]] | None:
    """(location, value) pairs of one object, or None for a binary object."""
    if data.startswith(_PARQUET_MAGIC):
        return _parquet_values(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return _json_leaves("$", json.loads(text))
    except ValueError:
        return ((f"line {number}", line) for number, line in enumerate(text.splitlines(), start=1))


def _parquet_values(data: bytes) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    for name in table.column_names:
        for value in table.column(name).to_pylist():
            yield from _json_leaves(f"column {name}", value)


def _json_leaves(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, child in value.items():
            yield from _json_leaves(f"{path}.{name}", child)
            yield f"{path}.{name} (name)", str(name)
    elif isinstance(value, list):
        for child in value:
            yield from _json_leaves(f"{path}[]", child)
    elif value is not None:
        yield path, value


def _image_findings(key: str, data: bytes, known_values: frozenset[str]) -> list[Finding] | None:
    """Findings in an image's metadata (None: not readable as an image, counted as skipped)."""
    try:
        fields = list(metadata_fields(data))
    except NotAnImage:
        return None
    named = {Finding(key, field.place, field.kind) for field in fields if field.kind}
    searched = _findings(key, [(field.place, _as_text(field.value)) for field in fields], known_values)
    return sorted(named | set(searched), key=lambda finding: (finding.key, finding.location, finding.kind))


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00")
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value)
    return str(value)


def _findings(key: str, values: Iterable[tuple[str, Any]], known_values: frozenset[str]) -> list[Finding]:
    found: set[Finding] = set()
    for location, value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            kinds = detect_number(location, float(value)) | detect_known(str(value), known_values)
        else:
            kinds = detect(str(value), known_values)
        found |= {Finding(key, location, kind) for kind in kinds}
    return sorted(found, key=lambda finding: (finding.key, finding.location, finding.kind))
