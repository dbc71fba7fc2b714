"""X-Ray segments, captured locally, hold no object key, file name or label text."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from .helpers import REPO_ROOT, module_env
from .xray_capture import KEY

PERSONAL_TEXT = ("Jane", "IMG_20250613", "0612345678")


def _capture_segments(*flags: str) -> str:
    """Run the handler in a Lambda-like process; return every X-Ray datagram it sent, joined."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(0.5)
        port = daemon.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tests.ingest.xray_capture", str(port), *flags],
            cwd=REPO_ROOT,
            env=module_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        datagrams = []
        try:
            while True:
                datagrams.append(daemon.recv(65536).decode("utf-8", "replace"))
        except TimeoutError:
            pass
    return "\n".join(datagrams)


@pytest.mark.slow
def test_traces_record_no_key_and_no_label():
    # GIVEN an upload whose key holds a name and whose label holds a phone number
    # WHEN the function handles it with X-Ray active, the segments sent to a local daemon port
    segments = _capture_segments()
    # THEN segments were sent (the function's own subsegments), and none holds personal text
    assert '"name": "## app.ingest"' in segments
    for text in PERSONAL_TEXT:
        assert text not in segments


@pytest.mark.slow
def test_capture_would_see_the_key_if_botocore_were_patched():
    # GIVEN the same run with botocore's automatic instrumentation turned back on
    segments = _capture_segments("--patch-botocore")
    # THEN the capture sees the key (URL-encoded in the S3 URL): the test above can detect a leak
    assert "Jane" in segments, KEY
