"""`fruits bench`: stream throughput against its runtime alone, for each featurizer runtime.

Modes, run for each runtime (litert, keras), each in a fresh interpreter (see benchmarks/modes.py):
  alone           decode + resize + featurize in one process, the runtime on all cores
  stream             the real streaming job in local[*] over N manifests (processing-time trigger),
                     every row scored by the runtime's classifier (the stream's default)
  stream_no_scoring  the same job with --no-predictions
  batch_backfill     the same job with --available-now
  scoring_paired     (only when asked for) one stream whose micro-batches are scored and not in turn,
                     N split into --paired-batches batches: scoring's cost from adjacent batches of one
                     process (benchmarks/scoring_paired.py), as two runs differ by more than that cost
and once per repetition:
  ingest          the ingest function's per-image time and cold import (benchmarks.ingest_bench)
With --repeat N the modes are interleaved (stream and stream_no_scoring swap order on every
other repetition), so slow minutes of a shared machine fall on both sides; each figure is the
median of its runs with their spread (min-max), and each ratio the ratio of the medians.
Printed last: each runtime's scoring and stream/alone ratios and the litert/keras stream speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.stats import median_or_none, paired_ratios, ratio, spread
from streaming_job.config import StreamConfig
from streaming_job.featurizer.model import RUNTIMES

# Two full micro-batches at the stream's default cap: the first (worker start-up) is left out.
DEFAULT_N = 2 * StreamConfig.max_files_per_trigger
DEFAULT_INPUT_SIZE = 224
DEFAULT_K = 16
# The stream's own default, so the benchmark measures the job as it runs out of the box.
DEFAULT_MAX_FILES_PER_TRIGGER = StreamConfig.max_files_per_trigger
DEFAULT_TRIGGER_SECONDS = 1.0
DEFAULT_INGEST_N = 200
DEFAULT_MODES = ("alone", "stream", "stream_no_scoring", "batch_backfill", "ingest")
MEASURED_MODES = (*DEFAULT_MODES, "scoring_paired")
RUNTIME_MODES = ("alone", "stream", "stream_no_scoring", "batch_backfill", "scoring_paired")
# The warm-up batch, then enough steady ones for six adjacent scored/unscored pairs.
DEFAULT_PAIRED_BATCHES = 8
STREAM_MODES = ("stream", "stream_no_scoring", "batch_backfill")
LOG_TAIL_CHARS = 3000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of <label>/<image> files (default: the bundled sample images)",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=DEFAULT_N,
        help=f"images per mode: the sample repeated to N (default {DEFAULT_N})",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=DEFAULT_INPUT_SIZE,
        help=f"featurizer input size in pixels (default {DEFAULT_INPUT_SIZE})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print every figure as one JSON object (last line)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("work") / "bench",
        help="where the benchmark lake is built (reused when its inputs are unchanged)",
    )
    parser.add_argument(
        "--k",
        type=int,
        default=DEFAULT_K,
        help=f"PCA components, fixed to keep the fit quick (default {DEFAULT_K})",
    )
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help=f"comma-separated subset of {','.join(MEASURED_MODES)} (default {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help=f"comma-separated featurizer runtimes to measure (default {','.join(RUNTIMES)})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each mode, interleaved; the medians are reported (default 1)",
    )
    parser.add_argument(
        "--master", default="local[*]", help="Spark master of the stream modes (default local[*])"
    )
    parser.add_argument(
        "--max-files-per-trigger",
        type=int,
        default=DEFAULT_MAX_FILES_PER_TRIGGER,
        help=f"most manifests per micro-batch (default {DEFAULT_MAX_FILES_PER_TRIGGER}, as the stream)",
    )
    parser.add_argument(
        "--trigger",
        type=float,
        default=DEFAULT_TRIGGER_SECONDS,
        help=f"processing-time trigger of the stream mode in seconds (default {DEFAULT_TRIGGER_SECONDS})",
    )
    parser.add_argument(
        "--paired-batches",
        type=int,
        default=DEFAULT_PAIRED_BATCHES,
        help=f"micro-batches the scoring_paired stream splits N into (default {DEFAULT_PAIRED_BATCHES})",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also run the stream on local[1] .. local[<cores>] and report the speed-up",
    )
    parser.add_argument(
        "--ingest-n",
        type=int,
        default=DEFAULT_INGEST_N,
        help=f"uploads timed by the ingest mode (default {DEFAULT_INGEST_N})",
    )


def validate(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(modes, runtimes) to run; raises ConfigError on a bad flag."""
    from fruits_core.errors import ConfigError
    from streaming_job.featurizer.model import MAX_INPUT_SIZE, MIN_INPUT_SIZE

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(MEASURED_MODES))
    if unknown or not modes:
        raise ConfigError(
            f"--modes must be a comma-separated subset of {','.join(MEASURED_MODES)}, got {args.modes!r}"
        )
    runtimes = [runtime.strip() for runtime in args.runtimes.split(",") if runtime.strip()]
    if not runtimes or set(runtimes) - set(RUNTIMES):
        raise ConfigError(
            f"--runtimes must be a comma-separated subset of {','.join(RUNTIMES)}, got {args.runtimes!r}"
        )
    if args.n < 2:
        raise ConfigError(f"--n must be >= 2, got {args.n}")
    if not MIN_INPUT_SIZE <= args.input_size <= MAX_INPUT_SIZE:
        raise ConfigError(
            f"--input-size must be in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}, got {args.input_size}"
        )
    if not 1 <= args.k < 64:
        raise ConfigError(f"--k must be in 1..63 (the PCA is fitted on 64 images), got {args.k}")
    if args.repeat < 1:
        raise ConfigError(f"--repeat must be >= 1, got {args.repeat}")
    if args.max_files_per_trigger < 1 or args.trigger <= 0 or args.ingest_n < 1:
        raise ConfigError("--max-files-per-trigger, --trigger and --ingest-n must be > 0")
    if "scoring_paired" in modes and not 3 <= args.paired_batches <= args.n:
        raise ConfigError(
            f"--paired-batches must be in 3..N (a warm-up batch, then a scored and an unscored one), "
            f"got {args.paired_batches}"
        )
    if args.images is not None and not args.images.is_dir():
        raise ConfigError(f"--images {args.images} is not a folder of <label>/<image> files")
    return [mode for mode in MEASURED_MODES if mode in modes], [
        runtime for runtime in RUNTIMES if runtime in runtimes
    ]


def run(args: argparse.Namespace) -> int:
    from demo.run import default_images_dir

    modes, runtimes = validate(args)
    images = (args.images or default_images_dir()).resolve()
    workdir = args.workdir.resolve()
    runner = ModeRunner(workdir)
    machine = describe_machine()
    say(f"preparing the benchmark lake in {workdir} ({args.n} images at {args.input_size} px)")
    workload = runner.run(
        "prepare",
        "--images",
        str(images),
        "--n",
        str(args.n),
        "--input-size",
        str(args.input_size),
        "--k",
        str(args.k),
        "--runtimes",
        ",".join(runtimes),
    )
    stream_flags = [
        "--max-files-per-trigger",
        str(args.max_files_per_trigger),
        "--trigger",
        str(args.trigger),
    ]
    paired_flags = ["--max-files-per-trigger", str(paired_batch_size(args)), "--trigger", str(args.trigger)]
    runs: dict[str, dict[str, list[dict]]] = {
        runtime: {mode: [] for mode in modes if mode in RUNTIME_MODES} for runtime in runtimes
    }
    ingest_runs: list[dict] = []
    for repetition in range(args.repeat):
        for runtime in runtimes:
            for mode in interleaved(list(runs[runtime]), repetition):
                say(f"run {repetition + 1}/{args.repeat}: {mode} ({runtime})")
                flags = paired_flags if mode == "scoring_paired" else stream_flags
                runs[runtime][mode].append(
                    runner.run(mode, "--runtime", runtime, "--master", args.master, *flags)
                )
        if "ingest" in modes:
            say(f"run {repetition + 1}/{args.repeat}: ingest")
            ingest_runs.append(
                runner.run("ingest", "--images", str(images), "--ingest-n", str(args.ingest_n))
            )
    scaling = measure_scaling(runner, runtimes[0], stream_flags, args.repeat) if args.scaling else None
    machine["load_average_after"] = _load_average()
    report = build_report(args, machine, workload, runs, ingest_runs, scaling)
    print(render_table(report))
    if args.json:
        print(json.dumps(report, sort_keys=True))
    streams = [run_ for by_mode in runs.values() for mode in STREAM_MODES for run_ in by_mode.get(mode, [])]
    paired = [run_ for by_mode in runs.values() for run_ in by_mode.get("scoring_paired", [])]
    return 0 if all(run_["complete"] for run_ in streams) and all(map(alternated, paired)) else 1


def paired_batch_size(args: argparse.Namespace) -> int:
    """Manifests per micro-batch of the scoring_paired stream: N in --paired-batches batches."""
    return -(-args.n // args.paired_batches)


def alternated(run_: dict) -> bool:
    """A complete scoring_paired run whose scored batches have a prediction on every row, the others none."""
    return (
        run_["complete"]
        and run_["scored_rows"] == run_["scored_batch_rows"]
        and run_["unscored_batch_predictions"] == 0
    )


def interleaved(modes: list[str], repetition: int) -> list[str]:
    """The modes of one repetition: stream and stream_no_scoring swap places every other time (ABBA)."""
    if repetition % 2 == 0 or not {"stream", "stream_no_scoring"} <= set(modes):
        return modes
    first, second = modes.index("stream"), modes.index("stream_no_scoring")
    swapped = list(modes)
    swapped[first], swapped[second] = modes[second], modes[first]
    return swapped


class ModeRunner:
    """Runs `python -m benchmarks.modes <mode>` in a fresh interpreter; returns its JSON result."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.count = 0

    def run(self, mode: str, *flags: str) -> dict:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count += 1
        log_path = self.logs / f"{self.count:02d}-{mode}.log"
        command = [sys.executable, "-m", "benchmarks.modes", mode, "--workdir", str(self.workdir), *flags]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        with log_path.open("w") as log:
            completed = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, check=False
            )
        lines = completed.stdout.strip().splitlines()
        if completed.returncode != 0 or not lines:
            tail = log_path.read_text()[-LOG_TAIL_CHARS:]
            raise RuntimeError(
                f"benchmark mode {mode} failed (exit {completed.returncode}); log {log_path}:\n{tail}"
            )
        return json.loads(lines[-1])


def measure_scaling(runner: ModeRunner, runtime: str, stream_flags: list[str], repeat: int) -> dict:
    """Steady-state stream images/s on local[1] .. local[cores], and the speed-up over one core."""
    cores = os.cpu_count() or 1
    by_cores: dict[str, float | None] = {}
    for count in range(1, cores + 1):
        samples = []
        for repetition in range(repeat):
            say(f"scaling run {repetition + 1}/{repeat}: stream on local[{count}]")
            samples.append(
                runner.run("stream", "--runtime", runtime, "--master", f"local[{count}]", *stream_flags)[
                    "steady"
                ]["images_per_s"]
            )
        by_cores[str(count)] = median_or_none(samples)
    return {
        "runtime": runtime,
        "images_per_s_by_cores": by_cores,
        "speedup": {count: ratio(value, by_cores["1"]) for count, value in by_cores.items()},
    }


def build_report(
    args: argparse.Namespace,
    machine: dict,
    workload: dict,
    runs: dict[str, dict[str, list[dict]]],
    ingest_runs: list[dict],
    scaling: dict | None,
) -> dict:
    report: dict = {
        "machine": machine,
        "config": {
            "images_dir": workload["spec"]["images_dir"],
            "distinct_images": workload["distinct_images"],
            "n": args.n,
            "input_size": args.input_size,
            "k": args.k,
            "repeat": args.repeat,
            "master": args.master,
            "max_files_per_trigger": args.max_files_per_trigger,
            "paired_max_files_per_trigger": paired_batch_size(args),
            "trigger_seconds": args.trigger,
            # the measured runtimes' artifacts (a reused lake may hold more runtimes)
            "model_versions": {runtime: workload["model_versions"][runtime] for runtime in runs},
            "pca_versions": {runtime: workload["pca_versions"][runtime] for runtime in runs},
            "classifier_versions": {
                runtime: workload["classifier_pointers"][runtime]["version"] for runtime in runs
            },
        },
        "runtimes": {runtime: summarize_runtime(by_mode) for runtime, by_mode in runs.items()},
    }
    if ingest_runs:
        report["ingest"] = {
            name: median_or_none([run_[name] for run_ in ingest_runs])
            for name in ("per_image_ms_median", "per_image_ms_p95", "cold_import_s")
        }
        report["ingest"].update(
            backend=ingest_runs[0]["backend"], images=ingest_runs[0]["images"], runs=ingest_runs
        )
    if scaling is not None:
        report["scaling"] = scaling
    stream_rates = {
        runtime: summary.get("stream", {}).get("steady_images_per_s")
        for runtime, summary in report["runtimes"].items()
    }
    report["ratio_litert_stream_vs_keras_stream"] = ratio(
        stream_rates.get("litert"), stream_rates.get("keras")
    )
    return report


def summarize_runtime(by_mode: dict[str, list[dict]]) -> dict:
    """One runtime's figures: medians and spreads of each mode, the ratios of the medians.

    Beside each ratio of medians, `*_runs` holds the ratio within each repetition
    (runs interleaved in the same minutes), whose min-max says how much one run can mislead.
    """
    summary: dict = {}
    if "alone" in by_mode:
        rates = [run_["images_per_s"] for run_ in by_mode["alone"]]
        summary["alone"] = {
            "images_per_s": median_or_none(rates),
            "images_per_s_spread": spread(rates),
            "runs": by_mode["alone"],
        }
    for mode in STREAM_MODES:
        if mode in by_mode:
            summary[mode] = summarize_stream_runs(by_mode[mode])
    if "scoring_paired" in by_mode:
        summary["scoring_paired"] = summarize_paired_runs(by_mode["scoring_paired"])
    alone_rate = summary.get("alone", {}).get("images_per_s")
    for name, mode, baseline in (
        ("ratio_stream_vs_alone", "stream", "alone"),
        ("ratio_backfill_vs_alone", "batch_backfill", "alone"),
        ("ratio_scoring", "stream", "stream_no_scoring"),
    ):
        summary[name] = ratio(
            summary.get(mode, {}).get("steady_images_per_s"),
            alone_rate if baseline == "alone" else summary.get(baseline, {}).get("steady_images_per_s"),
        )
        if mode in by_mode and baseline in by_mode:
            per_run = paired_ratios(_rates(by_mode[mode]), _rates(by_mode[baseline]))
            summary[f"{name}_runs"] = per_run
            summary[f"{name}_spread"] = spread(per_run)
    return summary


def _rates(runs: list[dict]) -> list[float | None]:
    """Each run's images/s: the steady state of a stream run, the whole run of `alone`."""
    return [run_["steady"]["images_per_s"] if "steady" in run_ else run_["images_per_s"] for run_ in runs]


def summarize_stream_runs(runs: list[dict]) -> dict:
    rates = _rates(runs)
    return {
        "steady_images_per_s": median_or_none(rates),
        "steady_images_per_s_spread": spread(rates),
        "wall_s": median_or_none([run_["wall_s"] for run_ in runs]),
        "wall_images_per_s": median_or_none([run_["wall_images_per_s"] for run_ in runs]),
        "first_batch_end_s": median_or_none([run_["first_batch_end_s"] for run_ in runs]),
        "images": runs[0]["images"],
        "complete": all(run_["complete"] for run_ in runs),
        "runs": runs,
    }


def summarize_paired_runs(runs: list[dict]) -> dict:
    """Scoring's cost from every scored/unscored pair of adjacent steady micro-batches, all runs pooled."""
    ratios = [value for run_ in runs for value in run_["pair_ratios"]]
    steady = [batch for run_ in runs for batch in run_["batches"][1:]]
    return {
        "pair_ratio": median_or_none(ratios),
        "pair_ratio_spread": spread(ratios),
        "pairs": len([value for value in ratios if value is not None]),
        "scored_images_per_s": median_or_none([batch["images_per_s"] for batch in steady if batch["scored"]]),
        "unscored_images_per_s": median_or_none(
            [batch["images_per_s"] for batch in steady if not batch["scored"]]
        ),
        "scored_rows": sum(run_["scored_rows"] for run_ in runs),
        "scored_batch_rows": sum(run_["scored_batch_rows"] for run_ in runs),
        "unscored_batch_rows": sum(run_["unscored_batch_rows"] for run_ in runs),
        "unscored_batch_predictions": sum(run_["unscored_batch_predictions"] for run_ in runs),
        "alternated": all(map(alternated, runs)),
        "runs": runs,
    }


def render_table(report: dict) -> str:
    config = report["config"]
    lines = [
        f"fruits bench: {config['n']} images ({config['distinct_images']} distinct) at "
        f"{config['input_size']} px, median of {config['repeat']} interleaved run(s) [min-max], "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}), load average "
        f"{_load(report['machine']['load_average_before'])} before, "
        f"{_load(report['machine']['load_average_after'])} after",
        f"  {'runtime':<8}{'mode':<16}{'images/s':>12}{'wall s':>10}  notes",
    ]
    for runtime, summary in report["runtimes"].items():
        if "alone" in summary:
            lines.append(
                f"  {runtime:<8}{'alone':<18}{_cell(summary['alone']['images_per_s'])}{'':>10}  "
                f"{_range(summary['alone']['images_per_s_spread'])} one process, the runtime on all cores"
            )
        for mode in STREAM_MODES:
            if mode in summary:
                figures = summary[mode]
                rate, wall = _cell(figures["steady_images_per_s"]), _cell(figures["wall_s"], 10)
                lines.append(
                    f"  {runtime:<8}{mode:<18}{rate}{wall}  "
                    f"{_range(figures['steady_images_per_s_spread'])} steady state; "
                    f"{figures['wall_images_per_s']} images/s incl. start-up, "
                    f"first batch done at {figures['first_batch_end_s']} s"
                )
        if "scoring_paired" in summary:
            paired = summary["scoring_paired"]
            lines.append(
                f"  {runtime:<8}{'scoring_paired':<18}{_cell(paired['scored_images_per_s'])}{'':>10}  "
                f"scored batches; unscored {paired['unscored_images_per_s']}; rows with a prediction "
                f"{paired['scored_rows']}/{paired['scored_batch_rows']} scored, "
                f"{paired['unscored_batch_predictions']}/{paired['unscored_batch_rows']} unscored"
            )
    if "ingest" in report:
        ingest = report["ingest"]
        lines.append(
            f"  {'ingest':<36}  per image {ingest['per_image_ms_median']} ms median, "
            f"{ingest['per_image_ms_p95']} ms p95; cold import {ingest['cold_import_s']} s "
            f"({ingest['backend']})"
        )
    if "scaling" in report:
        speedups = ", ".join(
            f"local[{cores}] {rate} images/s (x{report['scaling']['speedup'][cores]})"
            for cores, rate in report["scaling"]["images_per_s_by_cores"].items()
        )
        lines.append(f"  scaling ({report['scaling']['runtime']}): {speedups}")
    for runtime, summary in report["runtimes"].items():
        for name, label in (
            ("ratio_backfill_vs_alone", "batch_backfill/alone"),
            ("ratio_scoring", "stream with/without scoring"),
            ("ratio_stream_vs_alone", "stream/alone"),
        ):
            if summary.get(name) is not None or name == "ratio_stream_vs_alone":
                per_run = summary.get(f"{name}_spread")
                lines.append(
                    f"  ratio {label} ({runtime}): {summary[name]}"
                    + (f" (per repetition {_range(per_run)})" if per_run else "")
                )
        if "scoring_paired" in summary:
            paired = summary["scoring_paired"]
            lines.append(
                f"  ratio scored/unscored adjacent batches ({runtime}): {paired['pair_ratio']} "
                f"(median of {paired['pairs']} pairs {_range(paired['pair_ratio_spread'])})"
            )
    lines.append(f"  ratio stream litert/keras: {report['ratio_litert_stream_vs_keras_stream']}")
    return "\n".join(lines)


def _range(bounds: list[float] | None) -> str:
    return f"[{bounds[0]}-{bounds[1]}]" if bounds else ""


def _load(load_average: list[float] | None) -> str:
    return "/".join(str(value) for value in load_average) if load_average else "-"


def _cell(value, width: int = 12) -> str:
    return f"{value if value is not None else '-':>{width}}"


def describe_machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": _versions(),
        "load_average_before": _load_average(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("pyspark", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "pillow", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
