"""The erasure's settle period is waited out by a real sleep in production; these tests run the
CLI without it (tests/privacy/test_erase_settle.py proves what the second pass catches)."""

from __future__ import annotations

import pytest

from fruits_cli.subject import ENV_SETTLE


@pytest.fixture(autouse=True)
def _no_settle_wait(monkeypatch):
    monkeypatch.setenv(ENV_SETTLE, "0")
