"""Capture the demonstration the slides show: real command output, written into docs/data/.

    python docs/slides/capture_demo.py [--workdir work/demo]     (what `make demo-record` runs)

Runs, as a newcomer would:
1. `fruits demo --workdir W --record docs/data/demo.json`  -> docs/data/demo-output.txt (its summary)
2. `fruits status --lake W/lake`                           -> docs/data/status-output.txt
3. the features table read back (`fruits_lake.reading.read_features`, the README's reader)
                                                           -> docs/data/table-readback.txt
This machine's folders are replaced by the workdir as given (relative), so the files can be committed.
docs/slides/build.py reads them; tests/deliverables check docs and slides against docs/data/demo.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "docs" / "data"
DEMO_OUTPUT = DATA / "demo-output.txt"
STATUS_OUTPUT = DATA / "status-output.txt"
TABLE_READBACK = DATA / "table-readback.txt"
READBACK_COLUMNS = ["image_id", "subject_id", "label", "region", "captured_hour"]
# Printed by the read-back step: the table's first rows, as a data scientist sees them.
READBACK = """
import sys
from fruits_lake.reading import read_features
table = read_features(sys.argv[1]).to_pandas()
print(f"{len(table)} rows, features = {len(table['features'].iloc[0])} floats (the k PCA scores)")
columns = sys.argv[2].split(",")
short = table[columns].head(4).copy()
for name in ("image_id", "subject_id"):
    short[name] = short[name].str[:10] + "..."
print(short.to_string(index=False))
"""


def fruits_command() -> list[str]:
    """The CLI of the interpreter running this script (its venv), as `python -m` so sources win."""
    return [sys.executable, "-m", "fruits_cli.main"]


def run(command: list[str], workdir: Path, shown_as: str, accepted: tuple[int, ...] = (0,)) -> str:
    """Run a command from the repository root; its stdout with the workdir's absolute path replaced."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, check=False)
    if done.returncode not in accepted:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    absolute = str(workdir.resolve())
    # URIs as the README writes them (file://$PWD/work/demo/...), plain paths relative to the repository
    return done.stdout.replace(workdir.resolve().as_uri(), f"file://$PWD/{shown_as}").replace(
        absolute, shown_as
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="work/demo", help="the demo's workdir (default work/demo)")
    args = parser.parse_args(argv)
    workdir = (REPO / args.workdir).resolve()
    lake_uri = (workdir / "lake").as_uri()
    demo = run(
        [*fruits_command(), "demo", "--workdir", str(workdir), "--record", str(DATA / "demo.json")],
        workdir,
        args.workdir,
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    machine = f"# {os.cpu_count()} cores, load average {load} when captured: the timings depend on it"
    DEMO_OUTPUT.write_text(f"$ fruits demo\n{machine}\n{demo}")
    # `fruits status` exits with its state's code (the demo's stream has stopped): only 2, a bad
    # configuration, is a failure here.
    status_codes = tuple(code for code in range(10) if code != 2)
    status = run([*fruits_command(), "status", "--lake", lake_uri], workdir, args.workdir, status_codes)
    STATUS_OUTPUT.write_text(f"$ fruits status --lake {args.workdir}/lake\n{status}")
    readback = run(
        [sys.executable, "-c", READBACK, lake_uri, ",".join(READBACK_COLUMNS)], workdir, args.workdir
    )
    TABLE_READBACK.write_text(f"$ python -c 'read_features(lake)...'  (fruits_lake.reading)\n{readback}")
    for path in (DATA / "demo.json", DEMO_OUTPUT, STATUS_OUTPUT, TABLE_READBACK):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
