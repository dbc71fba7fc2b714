"""docs/operations.md's deployment snippets, run as written where they need no AWS account."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from operations.env_archive import env_spec
from operations.job_package import build_job_package

REPO = Path(__file__).resolve().parents[2]


def section(title: str) -> str:
    """The text of one `### ...` or `## ...` section of docs/operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    start = text.index(title)
    following = re.search(r"\n##+ ", text[start + len(title) :])
    return text[start : start + len(title) + (following.start() if following else len(text))]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def run_bash(script: str, cwd: Path, **environment: str) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tls_step_leaves_no_key_in_the_current_folder(tmp_path):
    # GIVEN step 5 as documented, run from an empty folder standing for the repository root
    [block] = bash_blocks(section("### 5. The EMR in-transit encryption certificates"))
    workdir = tmp_path / "repo"
    workdir.mkdir()
    # WHEN it runs (then says where the zip is, as step 6 reads $CERTS)
    certs = Path(run_bash(block + 'echo "$CERTS"\n', workdir, AWS_REGION="eu-west-3").strip())
    try:
        # THEN the current folder holds nothing, and the zip holds the three PEM files EMR needs
        assert list(workdir.iterdir()) == []
        assert not certs.is_relative_to(workdir) and sorted(path.name for path in certs.iterdir()) == [
            "emr-certs.zip"
        ]
        with zipfile.ZipFile(certs / "emr-certs.zip") as archive:
            assert sorted(archive.namelist()) == [
                "certificateChain.pem",
                "privateKey.pem",
                "trustedCertificates.pem",
            ]
    finally:
        for path in certs.iterdir():
            path.unlink()
        certs.rmdir()


def test_git_ignores_a_stray_certificate_bundle_or_key():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "emr-certs.zip" in ignored and "*.pem" in ignored


@pytest.mark.parametrize("variable", ["CODE_VERSION", "ENV_VERSION"])
def test_step_6_sets_the_versions_step_7_uses(variable):
    # GIVEN the line of step 6 that sets the variable, and step 7 that uses it
    upload = "\n".join(bash_blocks(section("### 6. Upload the code")))
    [line] = [line for line in upload.splitlines() if line.startswith(f"{variable}=")]
    assert f"${variable}" in bash_blocks(section("### 7. The EMR stack"))[0]
    # WHEN it runs from the repository root with this environment's Python
    python_bin = Path(
        sys.executable
    ).parent  # `python` is this environment's, as after `source .venv/bin/activate`
    value = run_bash(f"{line}\necho ${variable}\n", REPO, PATH=f"{python_bin}:{os.environ['PATH']}").strip()
    # THEN it is the version `fruits deploy upload` puts (LiteRT environment by default)
    expected = {
        "CODE_VERSION": build_job_package().version,
        "ENV_VERSION": env_spec(REPO / "pyproject.toml").version,
    }[variable]
    assert value == expected


def test_the_tear_down_deletes_the_retained_glue_database_before_a_redeploy():
    [block] = bash_blocks(section("## Tear-down"))
    lines = block.splitlines()
    read = next(index for index, line in enumerate(lines) if "output $INGEST_STACK LakeDatabaseName" in line)
    stack_gone = next(
        index for index, line in enumerate(lines) if "delete-stack --stack-name $INGEST_STACK" in line
    )
    dropped = next(
        index for index, line in enumerate(lines) if "aws glue delete-database --name $DATABASE" in line
    )
    assert read < stack_gone < dropped  # read while the stack exists, dropped once it is gone
