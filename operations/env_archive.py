"""Build the job's Python environment as a venv-pack archive for `spark.archives` (installs, packs).

EMR unpacks `s3://<lake>/code/env/<version>/fruits-env.tar.gz#environment` in every YARN
container, and the driver and the workers run `./environment/bin/python`: nodes install nothing
at boot. venv-pack does not copy the interpreter: `bin/python` links to `<python_prefix>/bin/python3.11`,
EMR 8's own (the bootstrap action checks it). pip installs wheels for the machine it runs on, so
the archive is built on Linux x86_64 with Python 3.11, like the nodes (manylinux wheels).
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from fruits_core.errors import ConfigError
from operations.job_env import Installed, canonical, env_version, job_dependencies, pinned_closure

ARCHIVE_NAME = "fruits-env.tar.gz"
# Where EMR 8 (Amazon Linux 2023) has Python 3.11: bin/python of the archive links to <prefix>/bin/.
EMR_PYTHON_PREFIX = "/usr"
CLUSTER_PYTHON = (3, 11)
CLUSTER_MACHINE = "x86_64"


@dataclass(frozen=True)
class EnvSpec:
    """What an archive holds: exact pins, and the interpreter prefix its bin/python links to."""

    pins: tuple[str, ...]
    python_prefix: str = EMR_PYTHON_PREFIX

    @property
    def version(self) -> str:
        return env_version(list(self.pins), self.python_prefix)


@dataclass(frozen=True)
class ArchiveSizes:
    packed_bytes: int
    unpacked_bytes: int


def project_dependencies(pyproject: Path) -> list[str]:
    return tomllib.loads(pyproject.read_text())["project"]["dependencies"]


@functools.cache
def installed_distributions() -> Mapping[str, Installed]:
    """The distributions of the running environment (the one the tests ran in), by canonical name.

    Read once per process (what is installed does not change while a command runs), and each
    distribution's metadata parsed once: `dist.version` and `dist.requires` would parse it again.
    """
    installed = {}
    for dist in importlib.metadata.distributions():
        metadata = dist.metadata
        requires = tuple(metadata.get_all("Requires-Dist") or ())
        installed[canonical(metadata["Name"])] = Installed(metadata["Version"], requires)
    return MappingProxyType(installed)


def env_spec(pyproject: Path, keras_runtime: bool = False, python_prefix: str = EMR_PYTHON_PREFIX) -> EnvSpec:
    requirements = job_dependencies(project_dependencies(pyproject), keras_runtime=keras_runtime)
    return EnvSpec(tuple(pinned_closure(requirements, installed_distributions())), python_prefix)


def require_cluster_platform() -> None:
    """Refuse to build anywhere pip would pick wheels the nodes cannot load."""
    found = (sys.platform, platform.machine(), sys.version_info[:2])
    if found != ("linux", CLUSTER_MACHINE, CLUSTER_PYTHON):
        raise ConfigError(
            f"the job's environment must be built on Linux {CLUSTER_MACHINE} with Python "
            f"{'.'.join(map(str, CLUSTER_PYTHON))} like the EMR 8 nodes, not {found[0]} {found[1]} "
            f"Python {'.'.join(map(str, found[2]))}"
        )


def build_env_archive(spec: EnvSpec, output: Path) -> Path:
    """A fresh venv with exactly the pins (no pip inside), packed by venv-pack into `output`."""
    import venv_pack

    require_cluster_platform()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fruits-env-") as scratch:
        env = Path(scratch) / "env"
        pins_file = Path(scratch) / "pins.txt"
        pins_file.write_text("\n".join(spec.pins) + "\n")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(env / "bin" / "python"),
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--requirement",
                str(pins_file),
            ],
            check=True,
        )
        link_interpreter_for_venv_pack(env)
        partial = output.with_name(output.name + ".partial")
        venv_pack.pack(
            prefix=str(env),
            output=str(partial),
            format="tar.gz",
            python_prefix=spec.python_prefix,
            force=True,
        )
        partial.replace(output)
    return output


def link_interpreter_for_venv_pack(env: Path) -> None:
    """Point bin/python3.X at `<home>/python`, the one link target venv-pack 0.2.0 rewrites correctly.

    venv-pack swaps the prefix `<home>/python` of a link for `<python_prefix>/bin/python3.X`; venv's
    own `python3.X -> <home>/python3.X` would come out as `.../python3.X3.X`.
    """
    settings = (line.partition("=") for line in (env / "pyvenv.cfg").read_text().splitlines())
    home = Path(next(value.strip() for key, _, value in settings if key.strip() == "home"))
    versioned = env / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    versioned.unlink()
    versioned.symlink_to(home / "python")


def ensure_env_archive(spec: EnvSpec, cache_dir: Path) -> Path:
    """The spec's archive under `cache_dir/<version>/`, built only when missing (building takes minutes)."""
    path = cache_dir / spec.version / ARCHIVE_NAME
    return path if path.is_file() else build_env_archive(spec, path)


def archive_sizes(path: Path) -> ArchiveSizes:
    """Bytes on S3 (packed) and in each container once unpacked (the members' sizes)."""
    with tarfile.open(path, "r:gz") as archive:
        unpacked = sum(member.size for member in archive.getmembers() if member.isfile())
    return ArchiveSizes(path.stat().st_size, unpacked)
