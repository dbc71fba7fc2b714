"""Lake URIs: the one parser and the one join; the `--lake` flag; S3 "not found" codes; atomic writes.

Standard library only: the ingest Lambda, the streaming job, the table layer and the privacy
commands all parse and build lake URIs here, so that they agree on every object's name.

The one spelling is the raw one, the form Hadoop (Spark) and pyiceberg take a location in: a local
file is `file://` + its path as it is (`file:///tmp/My Lake/x`), an object `s3://bucket/` + its
key as S3 stores it. Nothing is percent-decoded on the way in or encoded on the way out, so a name
never changes between two rooms. The one exception is a whole `file://` lake given in the
percent-encoded form `Path.as_uri` writes: `validate_lake_uri` decodes it once.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from fruits_core.errors import ConfigError

S3_SCHEME = "s3"
FILE_SCHEME = "file"
# S3 error codes that mean "no such object (version)": HEAD answers a bare 404, GET NoSuchKey.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
# S3 general purpose bucket names: 3-63 lowercase letters, digits, dots and dashes.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The environment variable every command reads for `--lake`.
LAKE_ENV = "FRUITS_LAKE"
# Characters a local lake's path may not hold: an escape, or where a URL's path ends.
_URL_DELIMITERS = "%#?"
LAKE_HELP = f"lake root: s3://bucket[/prefix] or file:///abs/path (env {LAKE_ENV})"


class UnsupportedUriError(ValueError):
    """The URI is neither `file://`, a local path nor `s3://bucket/key`.

    The message names the scheme, never the URI: an upload's key may hold personal data.
    """


def join_uri(base: str, *parts: str) -> str:
    """Join a lake URI and relative keys without doubling or losing slashes."""
    joined = base.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


def file_uri(path: str | Path) -> str:
    """The `file://` URI of an absolute local path (raw: `file:///tmp/My Lake`)."""
    path = Path(path)
    if not path.is_absolute():
        raise ValueError("a file:// URI needs an absolute path")
    return f"file://{path.as_posix()}"


def s3_uri(bucket: str, key: str) -> str:
    """The `s3://` URI of an object, its key as S3 stores it."""
    return f"s3://{bucket}/{key}"


def to_uri(path_or_uri: str | Path) -> str:
    """`s3://` and `file://` URIs unchanged; a local path becomes an absolute `file://` URI."""
    text = str(path_or_uri)
    if text.startswith(("s3://", "file://")):
        return text
    if "://" in text:
        raise UnsupportedUriError(f"unsupported URI scheme {urlparse(text).scheme!r}: use file:// or s3://")
    return file_uri(Path(text).expanduser().resolve())


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def local_path(uri: str | Path) -> Path:
    """The filesystem path of a `file://` URI (`file:/x`, Hadoop's spelling, too) or of a bare path."""
    text = str(uri)
    if text.startswith("file:"):
        rest = text[len("file:") :]
        if rest.startswith("//"):
            host, slash, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise UnsupportedUriError("file URI with a host is not supported: use file:///absolute/path")
            rest = slash + path
        return Path(rest)
    if "://" in text:
        raise UnsupportedUriError(f"not a local URI (scheme {urlparse(text).scheme!r})")
    return Path(text).expanduser()


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/any key` -> ("bucket", "any key"): the key taken verbatim, never decoded."""
    if not uri.startswith("s3://"):
        raise UnsupportedUriError(f"not an s3://bucket/key URI (scheme {urlparse(uri).scheme!r})")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise UnsupportedUriError("an s3:// URI needs a bucket")
    return bucket, key


def validate_lake_uri(uri: str, setting: str = "lake URI") -> str:
    """Accept `s3://bucket[/prefix]` or `file:///absolute/path`; return it without a trailing slash.

    A `file://` lake comes back raw (the one spelling), also when given as `Path.as_uri` writes it.

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
        return _raw_file_lake(uri, setting)
    raise ConfigError(f"{setting} must be s3://bucket[/prefix] or file:///absolute/path, got {uri!r}")


def from_spark_uri(uri: str) -> str:
    """A URI as Spark writes it in its checkpoint (percent-encoded; `file:/x` too) in the one spelling.

    Spark logs `Path.toUri` strings; Hadoop's `Path(String)` would take their escapes literally.
    """
    parsed = urlparse(uri)
    path = unquote(parsed.path)
    if parsed.scheme == FILE_SCHEME:
        return file_uri(path)
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def _raw_file_lake(uri: str, setting: str) -> str:
    """`file:///tmp/My%20Lake` -> `file:///tmp/My Lake`.

    Refused: `%` (it would read as an escape), `#` and `?` (pyiceberg parses locations as URLs
    and would cut the path there).
    """
    path = unquote(local_path(uri).as_posix())
    if set(path) & set(_URL_DELIMITERS):
        raise ConfigError(f"{setting}: a local lake's path may not contain % # or ?, got {uri!r}")
    return file_uri(path).rstrip("/")


def add_lake_argument(parser: argparse.ArgumentParser, help: str = LAKE_HELP) -> None:
    """The `--lake` flag, declared the same way for every command (default: FRUITS_LAKE)."""
    parser.add_argument("--lake", default=os.environ.get(LAKE_ENV), help=help)


def lake_uri_from_argument(text: str, setting: str = "--lake") -> str:
    """A command line's lake: a URI as `validate_lake_uri` accepts, or a local folder (relative or
    absolute), resolved to its absolute `file://` URI so every later step sees one form."""
    if text and "://" not in text:
        text = file_uri(Path(text).expanduser().resolve())
    return validate_lake_uri(text, setting)


def required_lake_uri(value: str | None, setting: str = "--lake") -> str:
    """The validated lake URI of a flag that has no default but the environment's."""
    if not value:
        raise ConfigError(f"{setting} (or {LAKE_ENV}) is required")
    return lake_uri_from_argument(value, setting)


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
