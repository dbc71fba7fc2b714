"""libjpeg itself, as the reference for the preflight: how many scans it starts on some bytes.

tests/ingest/libjpeg_scan_count.c is built here against jpeglib.h and linked to the
very libjpeg that Pillow loads (its bundled copy when the wheel has one), then called
through ctypes. Where no C compiler or jpeglib.h is installed, the tests that need it skip.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import PIL

SOURCE = Path(__file__).with_name("libjpeg_scan_count.c")


def pillow_libjpeg() -> list[str]:
    """The linker arguments for Pillow's libjpeg: its bundled file, else the system's -ljpeg."""
    bundled = sorted((Path(PIL.__file__).parent.parent / "pillow.libs").glob("libjpeg-*.so*"))
    if bundled:
        return [str(bundled[0]), f"-Wl,-rpath,{bundled[0].parent}"]
    return ["-ljpeg"]


def build(directory: Path) -> ctypes.CDLL | str:
    """The loaded counter, or why it could not be built."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return "no C compiler"
    library = directory / "libjpeg_scan_count.so"
    command = [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(SOURCE), *pillow_libjpeg()]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        return f"cannot build the libjpeg reference: {built.stderr.strip()[:200]}"
    loaded = ctypes.CDLL(str(library))
    loaded.libjpeg_scan_count.restype = ctypes.c_long
    loaded.libjpeg_scan_count.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_long]
    return loaded


def scan_count(library: ctypes.CDLL, data: bytes, limit: int) -> int:
    """Scans libjpeg starts on `data` (it stops counting past `limit`, or at its first fatal error)."""
    return library.libjpeg_scan_count(data, len(data), limit)
