"""Lake URIs: the one parser and the one join; S3 "not found" codes; atomic local writes.

Standard library only: the ingest Lambda, the streaming job, the table layer and the privacy
commands all parse and build lake URIs here, so that they agree on every object's name.

The one spelling: a URI is percent-encoded (RFC 3986, what `Path.as_uri` and Spark write), and
parsing decodes it. `file:///tmp/My%20Lake/x` and `file:///tmp/My Lake/x` both name the file
`/tmp/My Lake/x`; an S3 key `a b.jpg` is `s3://bucket/a%20b.jpg`. Whoever takes a location
verbatim (pyiceberg's PyArrowFileIO) gets `native_location(uri)`, the decoded form.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from fruits_core.errors import ConfigError

S3_SCHEME = "s3"
FILE_SCHEME = "file"
# S3 error codes that mean "no such object (version)": HEAD answers a bare 404, GET NoSuchKey.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
# S3 general purpose bucket names: 3-63 lowercase letters, digits, dots and dashes.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The environment variable every command reads for `--lake`.
LAKE_ENV = "FRUITS_LAKE"
LAKE_HELP = f"lake root: s3://bucket[/prefix] or file:///abs/path (env {LAKE_ENV})"
# Characters a path segment keeps unencoded (RFC 3986 pchar without `%`): `dt=2024-01-01` stays readable.
_SEGMENT_SAFE = "/=:@-._~!$&'()*+,;"


class UnsupportedUriError(ValueError):
    """The URI is neither `file://`, a local path nor `s3://bucket/key`.

    The message names the scheme, never the URI: an upload's key may hold personal data.
    """


def join_uri(base: str, *parts: str) -> str:
    """Join a lake URI and relative keys (encoded as they join) without doubling or losing slashes."""
    joined = base.rstrip("/")
    for part in parts:
        joined = f"{joined}/{quote(part.strip('/'), safe=_SEGMENT_SAFE)}"
    return joined


def file_uri(path: str | Path) -> str:
    """The `file://` URI of an absolute local path, encoded as `join_uri` encodes keys."""
    path = Path(path)
    if not path.is_absolute():
        raise ValueError("a file:// URI needs an absolute path")
    return f"file://{quote(path.as_posix(), safe=_SEGMENT_SAFE)}"


def s3_uri(bucket: str, key: str) -> str:
    """The `s3://` URI of an object: the key (any characters, as S3 stores it) encoded."""
    return f"s3://{bucket}/{quote(key, safe=_SEGMENT_SAFE)}"


def to_uri(path_or_uri: str | Path) -> str:
    """`s3://` and `file://` URIs unchanged; a local path becomes an absolute `file://` URI."""
    text = str(path_or_uri)
    if text.startswith(("s3://", "file://")):
        return text
    if "://" in text:
        raise UnsupportedUriError(f"unsupported URI scheme {urlparse(text).scheme!r}: use file:// or s3://")
    return file_uri(Path(text).expanduser().resolve())


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme == S3_SCHEME


def local_path(uri: str | Path) -> Path:
    """The filesystem path of a `file://` URI (decoded) or of a bare path; raises for `s3://`."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == FILE_SCHEME:
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedUriError("file URI with a host is not supported: use file:///absolute/path")
        # All after the scheme and host (`file:/x`, Hadoop's spelling, too): urlparse would split
        # `#` and `?` off the path, and in a file name they are characters.
        rest = text[len("file:") :]
        if rest.startswith("//"):
            rest = rest[2 + len(parsed.netloc) :]
        return Path(unquote(rest))
    if parsed.scheme == "":
        return Path(text).expanduser()
    raise UnsupportedUriError(f"not a local URI (scheme {parsed.scheme!r})")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/some%20key` -> ("bucket", "some key") (the key URL-decoded)."""
    parsed = urlparse(uri)
    if parsed.scheme != S3_SCHEME or not parsed.netloc:
        raise UnsupportedUriError(f"not an s3://bucket/key URI (scheme {parsed.scheme!r})")
    # The key is all after the bucket: `#` and `?` are characters of an S3 key.
    return parsed.netloc, unquote(uri[len(f"s3://{parsed.netloc}") :].lstrip("/"))


def native_location(uri: str) -> str:
    """The decoded URI, for readers that take a location verbatim (pyiceberg's PyArrowFileIO)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return f"s3://{bucket}/{key}".rstrip("/")
    return f"file://{local_path(uri).as_posix()}"


def validate_lake_uri(uri: str, setting: str = "lake URI") -> str:
    """Accept `s3://bucket[/prefix]` or `file:///absolute/path`; return it without a trailing slash.

    A `file://` lake comes back percent-encoded (the one spelling), whether or not it was typed so.

        `setting` names the flag or variable in the error message (e.g. `--lake`, `LAKE_URI`).
    """
    parsed = urlparse(uri)
    if parsed.scheme == S3_SCHEME and BUCKET_NAME.match(parsed.netloc or ""):
        return uri.rstrip("/")
    # The filesystem root (`file:///`) is no lake, and stripping its slashes would leave `file:`.
    if (
        parsed.scheme == FILE_SCHEME
        and not parsed.netloc
        and parsed.path.startswith("/")
        and parsed.path.strip("/")
    ):
        # One spelling whatever was typed: `My Lake` and `My%20Lake` name the same lake.
        return file_uri(local_path(uri)).rstrip("/")
    raise ConfigError(f"{setting} must be s3://bucket[/prefix] or file:///absolute/path, got {uri!r}")


def add_lake_argument(parser: argparse.ArgumentParser, help: str = LAKE_HELP) -> None:
    """The `--lake` flag, declared the same way for every command (default: FRUITS_LAKE)."""
    parser.add_argument("--lake", default=os.environ.get(LAKE_ENV), help=help)


def required_lake_uri(value: str | None, setting: str = "--lake") -> str:
    """The validated lake URI of a flag that has no default but the environment's."""
    if not value:
        raise ConfigError(f"{setting} (or {LAKE_ENV}) is required")
    return validate_lake_uri(value, setting)


def is_not_found_code(code: object) -> bool:
    return str(code) in NOT_FOUND_CODES


def is_missing_object_error(error: BaseException) -> bool:
    """True for a botocore ClientError whose code means "no such object" (checked by duck typing)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    return is_not_found_code(response.get("Error", {}).get("Code", ""))


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file whole: to a hidden temp name (readers skip names starting with '.'), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
