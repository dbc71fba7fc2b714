"""`fruits deploy upload|start|status|stop|fit-pca|maintain`: operate the stream on Amazon EMR.

Every subcommand takes `--dry-run`: it prints each AWS API call it would make, as
`service.operation({...})` lines, and calls nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from fruits_core import contracts
from fruits_core.aws_errors import missing_credentials_message
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import file_uri
from operations.deploy import DEFAULT_REGION, STOP_POLL_SECONDS
from streaming_job.config import add_stream_arguments

DEFAULT_STAGE = os.environ.get("FRUITS_STAGE", "dev")
# Where `fruits demo` / `fruits model export` / `fruits fit-pca` leave the artifacts by default.
DEFAULT_FEATURIZER = Path("work/demo/lake") / contracts.FEATURIZER_KEY
DEFAULT_PCA_DIR = Path("work/demo/lake/models/pca")
BOOTSTRAP_SCRIPT = Path("infra/bootstrap/check-python.sh")
# Where `upload` keeps the environment archives it built, by version (building one takes minutes).
DEFAULT_ENV_CACHE = Path("work/env")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")

    upload = actions.add_parser(
        "upload",
        help="upload the job package, entry scripts and model artifacts",
        description="upload the job package, entry scripts and model artifacts",
    )
    _add_target_arguments(upload)
    upload.add_argument(
        "--featurizer",
        type=Path,
        default=DEFAULT_FEATURIZER,
        help=f"local featurizer artifact (default {DEFAULT_FEATURIZER})",
    )
    upload.add_argument(
        "--pca",
        dest="pca_dir",
        type=Path,
        default=DEFAULT_PCA_DIR,
        help=f"local fitted PCA directory (default {DEFAULT_PCA_DIR})",
    )
    upload.add_argument("--skip-featurizer", action="store_true", help="do not upload the featurizer")
    upload.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="upload a seeded (random-weight) featurizer anyway: its features are not ImageNet features",
    )
    upload.add_argument(
        "--skip-pca",
        action="store_true",
        help="do not upload a PCA (fit it on EMR with `fruits deploy fit-pca`)",
    )
    upload.add_argument(
        "--keras-runtime",
        action="store_true",
        help="pack TensorFlow into the job's environment, for a .keras featurizer (~600 MB more; "
        "implied by a .keras --featurizer)",
    )
    upload.add_argument(
        "--env-cache",
        type=Path,
        default=Path(os.environ.get("FRUITS_ENV_CACHE", DEFAULT_ENV_CACHE)),
        help=f"where built environment archives are kept, by version (default {DEFAULT_ENV_CACHE}; "
        "env FRUITS_ENV_CACHE)",
    )
    upload.add_argument(
        "--tls-certificates",
        type=Path,
        default=None,
        help="zip of the PEM files for EMR in-transit encryption, uploaded to "
        "s3://<lake>/code/tls/emr-certs.zip (the EMR stack's TlsCertificatesS3Uri)",
    )
    upload.add_argument(
        "--bootstrap-script",
        type=Path,
        default=None,
        help=f"bootstrap action script (default <repo>/{BOOTSTRAP_SCRIPT})",
    )

    start = actions.add_parser(
        "start",
        help="add the streaming step (same flags as `fruits stream`)",
        description="add the streaming step (same flags as `fruits stream`)",
    )
    add_stream_arguments(start)
    _add_target_arguments(start, with_lake_and_stage=False)
    start.add_argument("--code-version", help="uploaded code version to run (default: the local sources')")
    start.add_argument(
        "--env-version",
        help="uploaded environment version to run (default: the local environment's, for the featurizer)",
    )
    start.add_argument(
        "--compute",
        choices=("ec2", "serverless", "auto"),
        default="ec2",
        help="where the stream runs: ec2 (the EMR stack's cluster), serverless (an EMR Serverless streaming "
        "job run; --stack-name is then the EMR Serverless stack) or auto, the cheaper at --images-per-day "
        "as `fruits cost` prices it (default ec2)",
    )
    start.add_argument(
        "--images-per-day",
        type=float,
        help="the expected upload rate: sizes the serverless executors' maximum, picks the mode with auto",
    )
    # On EMR: archive processed manifests (bounded S3 listing); the local FRUITS_* paths must not leak in.
    _override_defaults(start, clean_source="archive", stage=DEFAULT_STAGE)
    start.set_defaults(
        lake=None,
        checkpoint=None,
        featurizer=None,
        pca=None,
        cloudwatch_log_group=None,
    )

    status = actions.add_parser(
        "status",
        help="cluster, stream step and the stream's health",
        description="cluster, stream step and the stream's health",
    )
    _add_target_arguments(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")

    stop = actions.add_parser(
        "stop",
        help="stop the stream after its current micro-batch",
        description="stop the stream after its current micro-batch",
    )
    _add_target_arguments(stop)
    stop.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for a clean stop before cancelling the step (default 300)",
    )
    stop.add_argument(
        "--poll",
        type=float,
        default=STOP_POLL_SECONDS,
        help=f"seconds between step state checks (default {STOP_POLL_SECONDS:g})",
    )

    fit_pca = actions.add_parser(
        "fit-pca",
        help="fit the PCA on EMR (writes <lake>/models/pca)",
        description="fit the PCA on EMR (writes <lake>/models/pca)",
    )
    _add_target_arguments(fit_pca)
    fit_pca.add_argument("--code-version", help="uploaded code version to run (default: the local sources')")
    fit_pca.add_argument(
        "--env-version", help="uploaded environment version to run (default: the local environment's, LiteRT)"
    )
    fit_pca.add_argument("--images", help="images to fit on (default: the lake's clean/ images)")
    choice = fit_pca.add_mutually_exclusive_group()
    choice.add_argument("--k", type=int, help="number of components (default: by --target-variance)")
    choice.add_argument("--target-variance", type=float, help="explained variance to reach (default 0.95)")
    fit_pca.add_argument("--sample-size", type=int, help="images sampled for the fit")
    fit_pca.add_argument(
        "--replace",
        action="store_true",
        help="overwrite the lake's PCA (the step refuses otherwise); restart with --new-model-table",
    )

    maintain = actions.add_parser(
        "maintain",
        help="add the lake maintenance step now (the EMR stack's schedule adds it daily)",
        description="add the lake maintenance step now (the EMR stack's schedule adds it daily)",
    )
    _add_target_arguments(maintain)
    maintain.add_argument("--code-version", help="uploaded code version to run (default: the local sources')")
    maintain.add_argument(
        "--env-version", help="uploaded environment version to run (default: the local environment's, LiteRT)"
    )


def _override_defaults(parser: argparse.ArgumentParser, **defaults: str) -> None:
    """set_defaults, and each flag's "(default X" help rewritten to match (tests/deploy)."""
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults and action.help:
            action.help = re.sub(r"\(default [^;)]*", f"(default {defaults[action.dest]}", action.help)
            if "(default " not in action.help:
                action.help += f" (default {defaults[action.dest]})"


def _add_target_arguments(parser: argparse.ArgumentParser, with_lake_and_stage: bool = True) -> None:
    parser.add_argument(
        "--region",
        default=os.environ.get("FRUITS_REGION", DEFAULT_REGION),
        help=f"AWS region, EU only (default {DEFAULT_REGION}; env FRUITS_REGION)",
    )
    parser.add_argument(
        "--stack-name",
        default=os.environ.get("FRUITS_STACK_NAME"),
        help="the EMR CloudFormation stack (for upload, the ingest stack is enough): the "
        "cluster id, lake bucket and KMS key come from its outputs "
        "(env FRUITS_STACK_NAME)",
    )
    parser.add_argument("--cluster-id", help="EMR cluster id (instead of --stack-name)")
    parser.add_argument("--kms-key-id", help="KMS key ARN of the lake (instead of --stack-name)")
    if with_lake_and_stage:
        parser.add_argument("--lake", help="s3://bucket[/prefix] of the lake (instead of --stack-name)")
        parser.add_argument(
            "--stage",
            default=DEFAULT_STAGE,
            help=f"deployment stage: names the steps and the log group "
            f"(default {DEFAULT_STAGE}; env FRUITS_STAGE)",
        )
    parser.add_argument("--dry-run", action="store_true", help="print the AWS API calls, call nothing")


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from operations import deploy
    from operations.aws_calls import Boto3Executor, DryRunExecutor

    deploy.require_eu_region(args.region)
    executor = DryRunExecutor() if args.dry_run else Boto3Executor(args.region)
    if args.dry_run:
        executor.note(
            f"dry run in {args.region}: nothing is called; <...> marks values read from AWS at run time"
        )
    try:
        target = deploy.resolve_target(
            executor,
            stage=args.stage,
            stack_name=args.stack_name,
            cluster_id=args.cluster_id,
            lake_uri=args.lake,
            kms_key_id=args.kms_key_id,
            need_cluster=args.action != "upload",
            compute=_compute_mode(args),
        )
        return ACTIONS[args.action](args, executor, target)
    except deploy.DeployError as error:
        print(f"fruits deploy {args.action}: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        message = missing_credentials_message(error)
        if message is not None:  # the same line and rc 2 as every other command (fruits_cli.main)
            print(f"fruits deploy {args.action}: {message}", file=sys.stderr)
            return 2
        print(f"fruits deploy {args.action}: AWS error: {error}", file=sys.stderr)
        return 1


def _upload(args, executor, target) -> int:
    from operations import deploy
    from operations.job_package import build_job_package, package_directory

    sources_dir = package_directory("streaming_job")
    bootstrap = args.bootstrap_script or sources_dir.parent / BOOTSTRAP_SCRIPT
    sources = deploy.UploadSources(
        package=build_job_package(),
        main_script=_existing_file(sources_dir / "main.py", "stream entry script"),
        fit_pca_script=_existing_file(sources_dir / "fit_pca_main.py", "fit-pca entry script"),
        maintain_script=_existing_file(
            sources_dir / deploy.MAINTAIN_SCRIPT_NAME, "lake maintenance entry script"
        ),
        bootstrap_script=_existing_file(bootstrap, "bootstrap script (--bootstrap-script)"),
        featurizer=None
        if args.skip_featurizer
        else _existing_file(
            args.featurizer,
            "featurizer (--featurizer; export one with `fruits model export`, or --skip-featurizer)",
        ),
        pca_dir=None if args.skip_pca else _existing_pca(args.pca_dir),
        tls_certificates=args.tls_certificates
        and _existing_file(args.tls_certificates, "--tls-certificates"),
    )
    if sources.featurizer is not None:
        _check_featurizer(sources.featurizer, sources.pca_dir, args.allow_random_weights)
    keras_runtime = args.keras_runtime or (
        sources.featurizer is not None and contracts.featurizer_runtime(sources.featurizer.name) == "keras"
    )
    sources = replace(sources, env=_env_to_upload(executor, target, keras_runtime, args.env_cache))
    uris = deploy.upload(executor, target, sources)
    verb = "would upload" if executor.dry_run else "uploaded"
    executor.note(
        f"{verb} {len(uris)} objects to s3://{target.lake.bucket}/; code version "
        f"{sources.package.version} (start it with `fruits deploy start`)"
    )
    return 0


def _env_to_upload(executor, target, keras_runtime: bool, cache_dir: Path):
    """The environment archive to put, built (or found in the cache) only when S3 lacks its version."""
    from operations import deploy
    from operations.env_archive import ARCHIVE_NAME, archive_sizes, ensure_env_archive, env_spec

    spec = env_spec(_pyproject(), keras_runtime=keras_runtime)
    uploaded = deploy.env_uploaded(executor, target, spec.version)
    if uploaded:
        executor.note(f"environment {spec.version} is already in {target.env_uri(spec.version)}")
        return None
    if executor.dry_run:
        executor.note(f"builds the environment {spec.version} into {cache_dir} unless it is there, then:")
        return deploy.EnvUpload(cache_dir / spec.version / ARCHIVE_NAME, spec.version)
    archive = ensure_env_archive(spec, cache_dir)
    sizes = archive_sizes(archive)
    executor.note(
        f"environment {spec.version}: {archive} ({sizes.packed_bytes / 1e6:.0f} MB packed, "
        f"{sizes.unpacked_bytes / 1e6:.0f} MB unpacked)"
    )
    return deploy.EnvUpload(archive, spec.version)


def _pyproject() -> Path:
    from operations.job_package import package_directory

    return package_directory("operations").parent / "pyproject.toml"


def _env_version(args, featurizer: str | None) -> str:
    """The environment the steps run: --env-version, else this environment's for the featurizer's runtime."""
    from operations.env_archive import env_spec

    if args.env_version:
        return args.env_version
    keras_runtime = featurizer is not None and contracts.featurizer_runtime(featurizer) == "keras"
    return env_spec(_pyproject(), keras_runtime=keras_runtime).version


def _existing_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    return path


def _check_featurizer(featurizer: Path, pca_dir: Path | None, allow_random_weights: bool) -> None:
    """Refuse random weights unless asked for; warn when the PCA was fitted on another featurizer."""
    from streaming_job.featurizer.model import FeaturizerError, is_random_weights, load_featurizer_spec
    from streaming_job.featurizer.pca import PcaError, read_sidecar

    try:
        version = load_featurizer_spec(file_uri(featurizer.resolve())).model_version
    except FeaturizerError as error:
        raise ConfigError(str(error)) from error
    if is_random_weights(version) and not allow_random_weights:
        raise ConfigError(
            f"{featurizer} is {version}, a random-weight featurizer whose features are not ImageNet "
            "features: export the default with `fruits model export`, or pass --allow-random-weights"
        )
    if pca_dir is None:
        return
    try:
        fitted_on = read_sidecar(file_uri(pca_dir.resolve()))["model_version"]
    except PcaError:
        return
    if fitted_on != version:
        print(
            f"fruits deploy upload: WARNING: the PCA in {pca_dir} was fitted on {fitted_on}, the featurizer "
            f"is {version}: the stream will refuse to start; refit with `fruits deploy fit-pca`",
            file=sys.stderr,
        )


def _existing_pca(path: Path) -> Path:
    from operations.deploy import pca_files

    if not path.is_dir() or not pca_files(path):
        raise ConfigError(
            f"fitted PCA directory not found or empty: {path} (fit one with `fruits fit-pca`, "
            "or pass --skip-pca and run `fruits deploy fit-pca` after the upload)"
        )
    return path


def _code_version(args) -> str:
    from operations.job_package import build_job_package

    return args.code_version or build_job_package().version


def _compute_mode(args) -> str:
    """ec2 or serverless; auto asks `fruits cost` which is cheaper at the expected rate."""
    compute = getattr(args, "compute", "ec2")
    if compute == "ec2":
        return compute
    if not args.images_per_day or args.images_per_day <= 0:
        raise ConfigError(f"--compute {compute} needs --images-per-day N (> 0): it sizes the executors")
    if compute == "auto":
        from operations.cost import estimate

        return estimate(args.images_per_day).fleet.mode
    return compute


def _serverless_capacity(images_per_day: float):
    """The workers `fruits cost` prices at this rate, as the job run's Spark settings."""
    from operations.cost import Assumptions, estimate
    from operations.deploy import ServerlessCapacity

    a = Assumptions()
    return ServerlessCapacity(
        driver_vcpu=a.serverless_driver_vcpu,
        driver_gb=a.serverless_driver_gb,
        executor_vcpu=a.serverless_executor_vcpu,
        executor_gb=a.serverless_executor_gb,
        min_executors=a.serverless_min_executors,
        max_executors=estimate(images_per_day, assumptions=a).fleet.executors_peak,
    )


def _start(args, executor, target) -> int:
    from operations import deploy

    config = deploy.stream_config(target, args)
    version = _code_version(args)
    if target.application_id:
        capacity = _serverless_capacity(args.images_per_day)
        run_id = deploy.start_serverless(
            executor, target, config, version, _env_version(args, config.featurizer), capacity
        )
        if run_id:
            executor.note(
                f"stream job run {run_id} ({target.stream_step_name}, code {version}) started on EMR "
                f"Serverless application {target.application_id}, at most {capacity.max_executors} executors"
            )
        return 0
    step_id = deploy.start(executor, target, config, version, _env_version(args, config.featurizer))
    if step_id:
        executor.note(
            f"stream step {step_id} ({target.stream_step_name}, code {version}) added to "
            f"cluster {target.cluster_id}; follow it with `fruits deploy status`"
        )
    return 0


def _status(args, executor, target) -> int:
    from operations import deploy

    report = deploy.status(executor, target, health_reader=_stream_health)
    if executor.dry_run:
        return 0
    if args.json:
        print(json.dumps(report.as_dict(), default=str))
        return 0
    rows = [
        (
            "cluster",
            f"{report.cluster_id} {report.cluster_state or '?'}"
            + (f" ({report.cluster_state_reason})" if report.cluster_state_reason else ""),
        ),
        (
            "stream step",
            f"{report.step_id or '-'} {report.step_state or ''}"
            + (f" ({report.step_state_reason})" if report.step_state_reason else ""),
        ),
    ]
    health = report.stream_health or {}
    rows.append(("stream health", f"{health.get('health', '-').upper()} ({health.get('reason', '-')})"))
    last = health.get("last_batch") or {}
    if last:
        rows.append(
            (
                "last batch",
                f"#{last.get('batch_id')} at {last.get('timestamp')}: "
                f"{last.get('input_rows')} manifests, "
                f"backlog {last.get('backlog_manifests')}, "
                f"latency p95 {last.get('latency_p95_ms')} ms",
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for note in report.notes:
        print(f"note: {note}")
    print("details: fruits status --lake " + target.lake.root)
    return 0


def _stream_health(lake: str) -> dict:
    """The stream's own health rule (streaming_job.monitoring.health) applied to its status log."""
    from streaming_job.monitoring.health import lake_health

    return lake_health(lake).to_dict()


def _stop(args, executor, target) -> int:
    from operations import deploy

    result = deploy.stop(executor, target, timeout_s=args.timeout, poll_s=args.poll)
    messages = {
        "not_running": f"no PENDING/RUNNING {target.stream_step_name} step: nothing to stop",
        "stopped": f"stream step {result.step_id} stopped cleanly ({result.final_state})",
        "cancelled": f"stream step {result.step_id} did not stop within {args.timeout:g} s: cancelled it "
        "(SEND_INTERRUPT)",
    }
    if result.outcome in messages:
        executor.note(messages[result.outcome])
    return 0


def _fit_pca(args, executor, target) -> int:
    from fruits_core import contracts
    from operations import deploy

    options = deploy.FitPcaOptions(
        images=args.images,
        k=args.k,
        target_variance=args.target_variance,
        sample_size=args.sample_size,
        replace=args.replace,
    )
    version = _code_version(args)
    step_id = deploy.submit_fit_pca_step(
        executor, target, version, _env_version(args, contracts.FEATURIZER_KEY), options
    )
    if step_id:
        executor.note(
            f"fit-pca step {step_id} added to cluster {target.cluster_id}; the PCA is written to "
            f"{target.lake.uri(contracts.PCA_KEY)}"
        )
    return 0


def _maintain(args, executor, target) -> int:
    from fruits_core import contracts
    from operations import deploy

    version = _code_version(args)
    step_id = deploy.submit_maintain_step(
        executor, target, version, _env_version(args, contracts.FEATURIZER_KEY)
    )
    if step_id:
        executor.note(f"lake maintenance step {step_id} added to cluster {target.cluster_id}")
    return 0


ACTIONS = {
    "upload": _upload,
    "start": _start,
    "status": _status,
    "stop": _stop,
    "fit-pca": _fit_pca,
    "maintain": _maintain,
}
