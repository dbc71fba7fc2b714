"""The SAM (ingest) and EMR (stream) templates: linters, a real `sam build`, and the binding rules.

Linter tests run the real cfn-lint, checkov and SAM CLI from their own environments (`iac`).
The structural tests read the templates with a CloudFormation-tag-aware YAML loader and check the
rules the issue makes binding (EU only, least privilege, retention, encryption), cross-checked
against the code that has to agree with them (contracts.py, the ingest config, the stream's metrics).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from cfn_template import (
    EMR_TEMPLATE,
    INGEST_TEMPLATE,
    REPO_ROOT,
    SERVERLESS_TEMPLATE,
    as_list,
    function_properties,
    load_template,
    resources_of_type,
    role_statements,
    sub_text,
)
from fruits_ingest import config as ingest_config
from fruits_ingest import presign

from fruits_core import contracts
from operations import deploy as stream_deploy
from operations.cost import Assumptions
from streaming_job.config import StreamConfig
from streaming_job.monitoring import failure, status_log

CUSTOM_CHECKS_DIR = REPO_ROOT / "infra" / "checkov_checks"
CUSTOM_EMR_CHECKS = ("CKV_FRUITS_EMR_1", "CKV_FRUITS_EMR_2", "CKV_FRUITS_EMR_3", "CKV_FRUITS_EMR_4")
# GDPR: EU member-state regions only. London and Zurich are outside the EU.
EU_REGIONS = {"eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"}
STREAM_METRIC_NAMESPACE = StreamConfig.__dataclass_fields__["metrics_namespace"].default
# The only actions for which AWS offers no resource narrower than "*".
ACTIONS_WITHOUT_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
    "elasticmapreduce:PutBlockPublicAccessConfiguration",
    "elasticmapreduce:GetBlockPublicAccessConfiguration",
}


def _prefix_dir(key: str) -> str:
    return key.split("/", 1)[0] + "/"


# What each stream (EMR instance role) S3 object action may touch, as lake prefixes.
EXPECTED_STREAM_OBJECT_ACCESS = {
    "s3:GetObject": {
        contracts.CLEAN_PREFIX,
        contracts.MANIFESTS_PREFIX,
        contracts.MODELS_PREFIX,
        contracts.CODE_PREFIX,
        contracts.FEATURES_PREFIX,
        contracts.ERRORS_PREFIX,
        contracts.CHECKPOINTS_PREFIX,
        _prefix_dir(contracts.MANIFESTS_ARCHIVE_PREFIX),
        _prefix_dir(contracts.STOP_MARKER_KEY),
    },
    "s3:PutObject": {
        contracts.FEATURES_PREFIX,
        contracts.ERRORS_PREFIX,
        contracts.CHECKPOINTS_PREFIX,
        contracts.STATUS_PREFIX,
        contracts.EMR_LOGS_PREFIX,
        _prefix_dir(contracts.MANIFESTS_ARCHIVE_PREFIX),
        f"{contracts.PCA_KEY}/",
    },
    "s3:DeleteObject": {
        contracts.FEATURES_PREFIX,
        contracts.ERRORS_PREFIX,
        contracts.CHECKPOINTS_PREFIX,
        contracts.MANIFESTS_PREFIX,
        _prefix_dir(contracts.MANIFESTS_ARCHIVE_PREFIX),
        _prefix_dir(contracts.STOP_MARKER_KEY),
        f"{contracts.PCA_KEY}/",
    },
}
# What the ingest function may touch: (bucket, prefix) per S3 object action.
EXPECTED_INGEST_OBJECT_ACCESS = {
    "s3:GetObject": {
        ("UploadsBucket", contracts.UPLOADS_PREFIX),
        ("LakeBucket", contracts.TOMBSTONES_PREFIX),
        # a redelivered upload: its clean image and the manifest object it names (HEAD)
        ("LakeBucket", contracts.CLEAN_PREFIX),
        ("LakeBucket", contracts.MANIFESTS_PREFIX),
    },
    "s3:GetObjectVersion": {("UploadsBucket", contracts.UPLOADS_PREFIX)},
    # the processed upload's version, once its batch's manifests are stored
    "s3:DeleteObject": {("UploadsBucket", contracts.UPLOADS_PREFIX)},
    "s3:PutObject": {
        ("LakeBucket", contracts.CLEAN_PREFIX),
        ("LakeBucket", contracts.MANIFESTS_PREFIX),
        ("LakeBucket", contracts.QUARANTINE_PREFIX),
    },
    # and in the lake, only to remove what an interrupted try wrote for an upload of an erased subject
    "s3:DeleteObjectVersion": {
        ("UploadsBucket", contracts.UPLOADS_PREFIX),
        ("LakeBucket", contracts.CLEAN_PREFIX),
        ("LakeBucket", contracts.MANIFESTS_PREFIX),
        ("LakeBucket", contracts.QUARANTINE_PREFIX),
    },
}


def _run(
    command: list[Any], env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _allow_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (role_name, statement)
        for role_name in resources_of_type(template, "AWS::IAM::Role")
        for statement in role_statements(template, role_name)
        if statement["Effect"] == "Allow"
    ]


def _object_access(statements: list[dict[str, Any]], arn_pattern: str) -> dict[str, set[tuple[str, str]]]:
    """action -> {(bucket variable, key prefix)} for every S3 object ARN of the statements."""
    access: dict[str, set[tuple[str, str]]] = {}
    for statement in statements:
        for resource in as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::Sub" not in resource:
                continue  # !GetAtt / !ImportValue: a bucket, key, queue or log group ARN, not an object ARN
            text = sub_text(resource)
            match = re.fullmatch(arn_pattern, text)
            if match is None:
                continue
            for action in as_list(statement["Action"]):
                if action.startswith("s3:"):
                    access.setdefault(action, set()).add((match["bucket"], match["prefix"]))
    return access


def _parameter_default(template: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "Ref" in value:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res["Properties"] for name, res in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
    }


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """(namespace, name, dimensions) of a simple alarm or of each metric of a metric-math alarm."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
            }
        ]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


# --- The real linters and the real build ---------------------------------------------------------


@pytest.mark.iac
def test_cfn_lint_reports_nothing_on_either_template(cfn_lint):
    # GIVEN the templates WHEN cfn-lint checks them (errors and warnings) THEN it reports nothing
    result = _run([cfn_lint, INGEST_TEMPLATE, EMR_TEMPLATE, SERVERLESS_TEMPLATE])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def insecure_emr_template(folder: Path) -> Path:
    """The EMR template with every gap the custom checks guard reopened."""
    text = EMR_TEMPLATE.read_text(encoding="utf-8")
    for secure, insecure in (
        ("VisibleToAllUsers: false", "VisibleToAllUsers: true"),
        ("EnableEbsEncryption: true", "EnableEbsEncryption: false"),
        ("MinimumInstanceMetadataServiceVersion: 2", "MinimumInstanceMetadataServiceVersion: 1"),
        ("Value: !Ref EmrBlockPublicAccess", "Value: none"),
    ):
        assert secure in text
        text = text.replace(secure, insecure)
    path = folder / "emr-insecure.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkov_scan(checkov, tmp_path_factory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """One offline checkov call (it starts in seconds) on the three templates and the insecure EMR one:
    {file name: {"passed_checks" | "failed_checks" | "skipped_checks": [check, ...]}}."""
    insecure = insecure_emr_template(tmp_path_factory.mktemp("checkov"))
    result = _run(
        [
            checkov,
            *(
                part
                for path in (INGEST_TEMPLATE, EMR_TEMPLATE, SERVERLESS_TEMPLATE, insecure)
                for part in ("-f", path)
            ),
            "--framework",
            "cloudformation",
            "--external-checks-dir",
            CUSTOM_CHECKS_DIR,
            "--compact",
            "--skip-download",
            "--output",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0, result.stderr[-2000:]
    by_file: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
        for check in report["results"][outcome]:
            by_file.setdefault(Path(check["file_path"]).name, {}).setdefault(outcome, []).append(check)
    return by_file


@pytest.mark.iac
def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason(checkov_scan):
    # GIVEN the three templates WHEN checkov scans them (one call, offline, with the insecure one)
    templates = {INGEST_TEMPLATE.name, EMR_TEMPLATE.name, SERVERLESS_TEMPLATE.name}
    results = {name: checkov_scan.get(name, {}) for name in templates}
    failed = [
        (check["check_id"], check["resource"])
        for found in results.values()
        for check in found.get("failed_checks", [])
    ]
    # THEN no check fails, each file was really scanned, and each suppression says why
    assert failed == [], failed
    assert all(found.get("passed_checks") for found in results.values()), "a template was not scanned"
    passed = [check for found in results.values() for check in found["passed_checks"]]
    assert {check["check_id"] for check in passed} >= set(CUSTOM_EMR_CHECKS), (
        "the EMR custom checks did not run"
    )
    assert len(passed) >= 60
    skipped = [check for found in results.values() for check in found.get("skipped_checks", [])]
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) >= 40, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    # AND docs/testing.md quotes these counts
    quoted = re.search(
        r"(\d+) passed,\s+0 failed and (\d+) skipped", (REPO_ROOT / "docs" / "testing.md").read_text()
    )
    assert quoted and (int(quoted[1]), int(quoted[2])) == (len(passed), len(skipped)), (
        len(passed),
        len(skipped),
    )


@pytest.mark.iac
def test_custom_emr_checks_fail_an_insecure_cluster(checkov_scan):
    # GIVEN the EMR template with every gap the custom checks guard reopened, scanned with the others
    failed = checkov_scan["emr-insecure.yaml"].get("failed_checks", [])
    # THEN each custom check fails on it
    assert {check["check_id"] for check in failed} & set(CUSTOM_EMR_CHECKS) == set(CUSTOM_EMR_CHECKS)


def test_sam_validate_lint_accepts_the_ingest_template(sam, offline_aws_env):
    # GIVEN the SAM template and samconfig.toml WHEN `sam validate --lint` runs offline
    result = _run(
        [sam, "validate", "--lint", "--region", "eu-west-3", "--template-file", INGEST_TEMPLATE],
        env=offline_aws_env,
    )
    # THEN the template is valid
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.iac
@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO_ROOT / ".venv-lambda" / "bin" / "python3.12").exists(),
    reason="sam build of a python3.12 function needs Python 3.12: `make lambda-venv` found none",
)
def test_sam_build_packages_the_ingest_function_for_arm64(sam, offline_aws_env, tmp_path):
    # GIVEN the SAM template WHEN `sam build` resolves the function's requirements for arm64 / python3.12
    build_dir = tmp_path / "build"
    result = _run(
        [
            sam,
            "build",
            "--template-file",
            INGEST_TEMPLATE,
            "--build-dir",
            build_dir,
            "--no-cached",
            "--cache-dir",
            tmp_path / "cache",
            "--region",
            "eu-west-3",
        ],
        env=offline_aws_env,
        timeout=300,
    )
    # THEN the artifact holds the handler, the contracts and the pinned dependencies
    assert result.returncode == 0, (
        "sam build failed (every pin needs a manylinux_2_28-or-older aarch64 wheel for the python3.12 "
        f"Lambda runtime, Amazon Linux 2023):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    artifact = build_dir / "IngestFunction"
    assert (artifact / "app.py").is_file()
    # AND the shared core as real files (lambdas/ingest/fruits_core is a link that sam build follows)
    assert (artifact / "fruits_core" / "contracts.py").is_file()
    assert (artifact / "fruits_core" / "lake_uris.py").is_file()
    assert not (artifact / "fruits_core").is_symlink()
    assert (artifact / "PIL").is_dir()
    assert (artifact / "aws_lambda_powertools").is_dir()
    assert not (artifact / "numpy").exists(), "the Lambda package must stay slim"
    assert not (artifact / "presign_app.py").exists(), "the upload API ships in its own package"
    # AND the upload API's two functions get their own package: their handler, the modules they
    # import as real files, Powertools, and no Pillow (they never open an image)
    for name, handler in (("PresignFunction", "presign_app.py"), ("ModelFunction", "model_app.py")):
        api = build_dir / name
        assert (api / handler).is_file()
        for module in UPLOAD_API_MODULES:
            assert (api / module).is_file() and not (api / module).is_symlink(), f"{name}: {module}"
        assert (api / "aws_lambda_powertools").is_dir()
        assert not (api / "PIL").exists() and not list(api.glob("[Pp]illow*")), f"{name} ships Pillow"
        assert not (api / "fruits_ingest" / "imaging.py").exists()
        assert not (api / "app.py").exists()


# What the upload API's handlers import from the repository (lambdas/upload_api/ links each of them).
UPLOAD_API_MODULES = (
    "fruits_core/contracts.py",
    "fruits_core/clock.py",
    "fruits_core/errors.py",
    "fruits_core/lake_uris.py",
    "fruits_ingest/__init__.py",
    "fruits_ingest/api_answers.py",
    "fruits_ingest/app_download.py",
    "fruits_ingest/config.py",
    "fruits_ingest/identity.py",
    "fruits_ingest/label_vocabulary.json",
    "fruits_ingest/labels.py",
    "fruits_ingest/presign.py",
    "fruits_ingest/quota.py",
)
UPLOAD_API_DIR = REPO_ROOT / "lambdas" / "upload_api"
SAM_FUNCTIONS = ("IngestFunction", "PresignFunction", "ModelFunction")


def _pins(requirements: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    pins = dict(line.split("==", 1) for line in lines if line)
    return {re.sub(r"\[.*\]", "", name).lower(): version for name, version in pins.items()}


def test_every_function_shares_runtime_architecture_tracing_and_logs_through_globals(ingest_template):
    # GIVEN the SAM template's Globals and its functions
    shared = ingest_template["Globals"]["Function"]
    assert shared["Runtime"] == "python3.12" and shared["Architectures"] == ["arm64"]
    assert shared["Tracing"] == "Active" and shared["LoggingConfig"] == {"LogFormat": "Text"}
    assert shared["KmsKeyArn"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    functions = resources_of_type(ingest_template, "AWS::Serverless::Function")
    assert set(functions) == set(SAM_FUNCTIONS)
    for name, function in functions.items():
        own = function["Properties"]
        # THEN no function repeats what Globals sets once (a list there would be added to, not replaced)
        assert not {"Runtime", "Architectures", "Tracing", "KmsKeyArn"} & set(own), name
        assert set(own["LoggingConfig"]) == {"LogGroup"}, name
        merged = function_properties(ingest_template, name)
        assert merged["Architectures"] == ["arm64"], name
        # AND each logs to its own group with the shared Powertools settings and its own service name
        variables = merged["Environment"]["Variables"]
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}, name
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Fruits/Ingest", name
        assert "POWERTOOLS_SERVICE_NAME" in own["Environment"]["Variables"], name


def test_the_upload_api_functions_have_their_own_code_without_pillow(ingest_template):
    # GIVEN the presign and model functions WHEN their code location is read
    for name in ("PresignFunction", "ModelFunction"):
        function = function_properties(ingest_template, name)
        assert function["CodeUri"] == "lambdas/upload_api/", name
        module, handler = function["Handler"].split(".")
        assert f"def {handler}(" in (UPLOAD_API_DIR / f"{module}.py").read_text(), name
    # THEN their requirements pin no Pillow, and the pins both packages share are the same
    api_pins, ingest_pins = (
        _pins(REPO_ROOT / "lambdas" / folder / "requirements.txt") for folder in ("upload_api", "ingest")
    )
    assert "pillow" not in api_pins and "pillow" in ingest_pins
    assert {name: ingest_pins.get(name) for name in api_pins} == api_pins
    # AND the directory holds exactly the modules the handlers import, each a link to the one source
    shipped_ingest = {p.name for p in (UPLOAD_API_DIR / "fruits_ingest").iterdir() if p.name != "__pycache__"}
    assert {f"fruits_ingest/{name}" for name in shipped_ingest} == {
        m for m in UPLOAD_API_MODULES if m.startswith("fruits_ingest/")
    }
    assert all((UPLOAD_API_DIR / module).is_file() for module in UPLOAD_API_MODULES)
    assert (UPLOAD_API_DIR / "fruits_core").resolve() == REPO_ROOT / "fruits_core"
    for name in shipped_ingest:
        source = REPO_ROOT / "lambdas" / "ingest" / "fruits_ingest" / name
        assert (UPLOAD_API_DIR / "fruits_ingest" / name).resolve() == source, name


def test_the_upload_api_handlers_import_from_their_own_package_alone(offline_aws_env):
    # GIVEN a fresh Python (-I: no PYTHONPATH, no working directory; -B: no bytecode left in the
    # package), lambdas/upload_api/ first on its path
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(UPLOAD_API_DIR)!r})\n"
        "import presign_app, model_app, fruits_ingest, fruits_core\n"
        "print(fruits_ingest.__file__, fruits_core.__file__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PIL', 'numpy')))\n"
    )
    env = {
        **offline_aws_env,
        "UPLOADS_BUCKET": "fruits-dev-uploads-123456789012-eu-west-3",
        "LAKE_URI": "s3://fruits-dev-lake-123456789012-eu-west-3",
        "PYTHONPATH": "",
    }
    # WHEN both handlers are imported (a cold start of each)
    result = _run([sys.executable, "-I", "-B", "-c", probe], env=env)
    # THEN every module they need is there, and neither loads Pillow or NumPy
    assert result.returncode == 0, result.stderr[-2000:]
    paths, heavy = result.stdout.splitlines()
    assert all(path.startswith(str(UPLOAD_API_DIR)) for path in paths.split()), paths
    assert heavy == "[]"


# --- Binding rules, read from the templates -------------------------------------------------------


@pytest.mark.parametrize("template_path", [INGEST_TEMPLATE, EMR_TEMPLATE], ids=["sam", "emr"])
def test_both_templates_refuse_every_region_outside_the_eu(template_path):
    # GIVEN a template WHEN its Rules are read
    rules = load_template(template_path)["Rules"]
    assertions = [assertion for rule in rules.values() for assertion in rule["Assertions"]]
    # THEN one assertion requires AWS::Region to be one of the EU member-state regions, nothing more
    region_checks = [
        assertion["Assert"]["Fn::Contains"]
        for assertion in assertions
        if assertion["Assert"].get("Fn::Contains", [None, None])[1] == {"Ref": "AWS::Region"}
    ]
    assert len(region_checks) == 1
    allowed = set(region_checks[0][0])
    assert allowed == EU_REGIONS
    assert not allowed & {"eu-west-2", "eu-central-2", "us-east-1"}
    assert set(stream_deploy.EU_REGIONS) == EU_REGIONS, "`fruits deploy` and the templates disagree"


def test_ingest_queue_redrives_to_the_dlq_after_five_receives(ingest_template):
    # GIVEN the ingest queue WHEN its redrive policy is read THEN 5 receives send a message to the DLQ
    redrive = ingest_template["Resources"]["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}


def test_queue_visibility_timeout_is_at_least_six_function_timeouts(ingest_template):
    # GIVEN the queue, the function and its SQS event source WHEN their timeouts are compared
    resources = ingest_template["Resources"]
    visibility = resources["IngestQueue"]["Properties"]["VisibilityTimeout"]
    timeout = function_properties(ingest_template, "IngestFunction")["Timeout"]
    (event,) = function_properties(ingest_template, "IngestFunction")["Events"].values()
    window = event["Properties"]["MaximumBatchingWindowInSeconds"]
    # THEN visibility >= 6x timeout + the batching window (AWS's advice for SQS event sources)
    assert visibility >= 6 * timeout + window


def test_an_erasure_waits_out_every_ingest_in_flight(ingest_template):
    # GIVEN the ingest function's timeout (its batch's manifest flush runs inside it)
    timeout = function_properties(ingest_template, "IngestFunction")["Timeout"]
    # THEN `fruits subject erase` settles longer before its second pass, with a margin of a minute
    assert timeout + 60 <= contracts.ERASURE_SETTLE_SECONDS


def test_both_queues_and_the_topic_are_encrypted_with_the_lake_key(ingest_template):
    resources = ingest_template["Resources"]
    # GIVEN the queues and the alert topic WHEN their encryption is read THEN they use the CMK
    for name in ("IngestQueue", "IngestDeadLetterQueue"):
        assert resources[name]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    assert resources["AlertTopic"]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    assert resources["LakeKey"]["Properties"]["EnableKeyRotation"] is True


def test_ingest_function_is_python312_arm64_with_partial_batch_failures(ingest_template):
    # GIVEN the function WHEN its definition is read
    function = function_properties(ingest_template, "IngestFunction")
    # THEN runtime, architecture, code, handler, tracing and the SQS event source are as required
    assert function["Runtime"] == "python3.12"  # Amazon Linux 2023: current Pillow wheels load there
    assert function["Architectures"] == ["arm64"]
    assert function["CodeUri"] == "lambdas/ingest/"
    assert function["Handler"] == "app.lambda_handler"
    assert function["Tracing"] == "Active"
    assert function["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    module, handler = function["Handler"].split(".")
    assert f"def {handler}(" in (REPO_ROOT / function["CodeUri"] / f"{module}.py").read_text()
    event = function["Events"]["Uploads"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_ingest_function_environment_matches_what_the_function_reads(ingest_template):
    # GIVEN the function's environment WHEN compared with the ingest config's variable names
    variables = function_properties(ingest_template, "IngestFunction")["Environment"]["Variables"]
    # THEN every required variable is set, with the Powertools settings the alarms depend on
    assert set(variables) == {
        ingest_config.ENV_LAKE_URI,
        ingest_config.ENV_PSEUDONYM_KEY_PARAMETER,
        ingest_config.ENV_MAX_UPLOAD_BYTES,
        ingest_config.ENV_MAX_IMAGE_PIXELS,
        ingest_config.ENV_IDENTITY_FROM_KEY,
        ingest_config.ENV_ERASURE_GRACE_DAYS,
        ingest_config.ENV_UPLOADS_BUCKET,
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    assert ingest_config.ENV_PSEUDONYM_KEY not in variables, "the key itself never sits in the environment"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "ingest"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Fruits/Ingest"
    # AND the limits' defaults and ceilings are the ones the function validates at start-up
    parameters = ingest_template["Parameters"]
    assert parameters["MaxUploadBytes"]["Default"] == ingest_config.DEFAULT_MAX_UPLOAD_BYTES
    assert parameters["MaxUploadBytes"]["MaxValue"] == ingest_config.MAX_UPLOAD_BYTES_CEILING
    assert parameters["MaxImagePixels"]["Default"] == ingest_config.DEFAULT_MAX_IMAGE_PIXELS
    assert parameters["MaxImagePixels"]["MaxValue"] == ingest_config.MAX_IMAGE_PIXELS_CEILING
    assert parameters["ErasureGraceDays"]["Default"] == contracts.DEFAULT_ERASURE_GRACE_DAYS
    assert parameters["ErasureGraceDays"]["MaxValue"] == ingest_config.ERASURE_GRACE_DAYS_CEILING
    assert parameters["DailyUploadQuota"]["Default"] == presign.DEFAULT_DAILY_UPLOAD_QUOTA
    assert parameters["DailyUploadQuota"]["MaxValue"] == presign.DAILY_UPLOAD_QUOTA_CEILING


@pytest.mark.parametrize("template_path", [INGEST_TEMPLATE, EMR_TEMPLATE], ids=["sam", "emr"])
def test_no_role_allows_a_wildcard_action_or_an_unneeded_wildcard_resource(template_path):
    template = load_template(template_path)
    # GIVEN every Allow statement of every role
    statements = _allow_statements(template)
    assert statements
    for role_name, statement in statements:
        actions = as_list(statement["Action"])
        # THEN no action is a wildcard ("*", "s3:*", "kms:Get*" ...)
        assert not [action for action in actions if "*" in action], (role_name, statement.get("Sid"))
        # AND "*" resources appear only for actions without resource-level permissions
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE_LEVEL, (role_name, statement.get("Sid"))
        if "cloudwatch:PutMetricData" in actions:
            assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == STREAM_METRIC_NAMESPACE


def test_ingest_function_reaches_only_its_prefixes(ingest_template):
    # GIVEN the function role's statements
    statements = [s for role, s in _allow_statements(ingest_template) if role == "IngestFunctionRole"]
    access = _object_access(statements, r"\$\{(?P<bucket>\w+)\.Arn\}/(?P<prefix>[a-z-]+/)\*")
    # THEN object access is exactly: read and delete uploads/, write clean/ manifests/ quarantine/ in the
    # lake, read tombstones/ and (redeliveries) clean/ manifests/ archive/manifests/
    assert access == EXPECTED_INGEST_OBJECT_ACCESS
    # AND every other S3 grant is a bucket-level listing (404 vs 403; the versions of its own writes)
    s3_statements = [s for s in statements if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    s3_resources = [r for s in s3_statements for r in as_list(s["Resource"])]
    object_arns = [sub_text(r) for r in s3_resources if "Fn::Sub" in r]
    assert len(object_arns) == 12 and all(
        re.fullmatch(r"\$\{\w+\.Arn\}/[a-z-]+/(manifests/)?\*", arn) for arn in object_arns
    ), object_arns
    assert "${LakeBucket.Arn}/archive/manifests/*" in object_arns
    bucket_level = [
        s
        for s in s3_statements
        if s["Resource"] in ({"Fn::GetAtt": ["UploadsBucket", "Arn"]}, {"Fn::GetAtt": ["LakeBucket", "Arn"]})
    ]
    # no ListBucketVersions on the uploads bucket: a reused presigned POST is refused by the clean
    # image's conditional write, not found by listing the key's versions
    assert sorted(s["Action"] for s in bucket_level) == [
        "s3:ListBucket",
        "s3:ListBucket",
        "s3:ListBucketVersions",
    ]
    assert len(s3_resources) == len(object_arns) + len(bucket_level)
    # AND it reads only its own SSM parameter and uses only the lake key
    by_action = {action: s for s in statements for action in as_list(s["Action"])}
    assert "ssm:GetParameter" not in by_action
    assert sub_text(by_action["ssm:GetParameterHistory"]["Resource"]).endswith(
        ":parameter${PseudonymKeyParameterName}"
    )
    assert by_action["kms:Decrypt"]["Resource"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}


def test_stream_instance_role_reaches_only_the_stream_prefixes(emr_template):
    # GIVEN the EMR instance role
    statements = role_statements(emr_template, "InstanceRole")
    access = _object_access(statements, r"\$\{(?P<bucket>LakeBucketArn)\}/(?P<prefix>[a-z/_-]+/)\*")
    # THEN each S3 object action touches exactly the expected lake prefixes
    assert {action: {prefix for _, prefix in pairs} for action, pairs in access.items()} == (
        EXPECTED_STREAM_OBJECT_ACCESS
    )
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert set(by_sid["UseLakeKey"]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert by_sid["UseLakeKey"]["Resource"] == {
        "Fn::ImportValue": {"Fn::Sub": "${IngestStackName}-LakeKmsKeyArn"}
    }
    assert by_sid["WriteStreamLogGroup"]["Resource"] == {"Fn::GetAtt": ["StreamLogGroup", "Arn"]}


def test_emr_service_role_uses_the_v2_policy_and_passes_only_the_instance_role(emr_template):
    role = emr_template["Resources"]["EmrServiceRole"]["Properties"]
    # GIVEN the service role WHEN its policies are read
    managed = [sub_text(arn) for arn in role["ManagedPolicyArns"]]
    statements = role_statements(emr_template, "EmrServiceRole")
    # THEN it has the managed v2 policy and a single PassRole on the instance role, to EC2 only
    assert managed == ["arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"]
    assert len(statements) == 1
    assert statements[0]["Action"] == "iam:PassRole"
    assert statements[0]["Resource"] == {"Fn::GetAtt": ["InstanceRole", "Arn"]}
    assert statements[0]["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com"


def test_buckets_are_kms_encrypted_private_owner_enforced_and_tls_only(ingest_template):
    buckets = resources_of_type(ingest_template, "AWS::S3::Bucket")
    policies = {
        policy["Properties"]["Bucket"]["Ref"]: policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in resources_of_type(ingest_template, "AWS::S3::BucketPolicy").values()
    }
    for name in ("UploadsBucket", "LakeBucket"):
        # GIVEN a data bucket
        bucket = buckets[name]["Properties"]
        encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        # THEN it is SSE-KMS with the CMK, owner-enforced, fully private, TLS-only
        assert encryption["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": ["LakeKey", "Arn"]},
        }
        assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        assert all(bucket["PublicAccessBlockConfiguration"].values())
        assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    for name in buckets:
        deny_plain_http = [
            s
            for s in policies[name]
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert len(deny_plain_http) == 1, name
    assert buckets["LakeBucket"]["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"


def test_lifecycle_expires_uploads_after_one_day_and_quarantine_after_thirty(ingest_template):
    resources = ingest_template["Resources"]

    def expiry_days(bucket: str, prefix: str) -> int:
        rules = resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
        days = next(rule["ExpirationInDays"] for rule in rules if rule.get("Prefix") == prefix)
        return _parameter_default(ingest_template, days)

    # GIVEN the lifecycle rules THEN raw uploads live 1 day and quarantine records 30 days
    assert expiry_days("UploadsBucket", contracts.UPLOADS_PREFIX) == 1
    assert expiry_days("LakeBucket", contracts.QUARANTINE_PREFIX) == 30


def test_uploads_notify_the_ingest_queue_for_the_uploads_prefix_only(ingest_template):
    config = ingest_template["Resources"]["UploadsBucket"]["Properties"]["NotificationConfiguration"]
    # GIVEN the uploads bucket's notifications THEN object creations under uploads/ go to the queue
    (queue_config,) = config["QueueConfigurations"]
    assert queue_config["Event"] == "s3:ObjectCreated:*"
    assert queue_config["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert queue_config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": contracts.UPLOADS_PREFIX}]


def test_kms_key_lets_cloudwatch_logs_encrypt_both_pipeline_log_groups(ingest_template, emr_template):
    # GIVEN the key policy's CloudWatch Logs statement, for stage dev
    statements = ingest_template["Resources"]["LakeKey"]["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = [s for s in statements if sub_text(s["Principal"].get("Service", "")).startswith("logs.")]
    patterns = [sub_text(p) for p in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]]

    def arn_of(log_group_name: str) -> str:
        name = sub_text(log_group_name).replace("${Stage}", "dev")
        return f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name}"

    ingest_group = arn_of(ingest_template["Resources"]["IngestLogGroup"]["Properties"]["LogGroupName"])
    stream_group = arn_of(emr_template["Resources"]["StreamLogGroup"]["Properties"]["LogGroupName"])
    # THEN both log groups (and the name `fruits deploy` passes to the stream) match, another stage's do not
    dev_patterns = [p.replace("${Stage}", "dev") for p in patterns]
    assert any(fnmatch(ingest_group, p) for p in dev_patterns)
    assert any(fnmatch(stream_group, p) for p in dev_patterns)
    assert stream_group.endswith(stream_deploy.STREAM_LOG_GROUP_TEMPLATE.format(stage="dev"))
    assert not any(fnmatch(stream_group.replace("/dev/", "/prod/"), p) for p in dev_patterns)


def test_ingest_alarms_cover_dlq_errors_throttles_and_quarantine_rate(ingest_template):
    alarms = _alarms(ingest_template)
    watched = {(m["Namespace"], m["MetricName"]) for alarm in alarms.values() for m in _alarm_metrics(alarm)}
    # GIVEN the ingest alarms THEN they watch the DLQ, errors, throttles and both outcome counts
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("Fruits/Ingest", "Quarantined"),
        ("Fruits/Ingest", "Accepted"),
    } <= watched
    rate = alarms["QuarantineRateAlarm"]
    for metric in _alarm_metrics(rate):
        assert metric["Dimensions"] == [{"Name": "service", "Value": "ingest"}]
    assert "quarantined" in next(q["Expression"] for q in rate["Metrics"] if q.get("ReturnData"))
    dlq = alarms["DeadLetterQueueNotEmptyAlarm"]
    assert dlq["Threshold"] == 0 and dlq["ComparisonOperator"] == "GreaterThanThreshold"
    # AND every alarm notifies the alert topic
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}], name


def test_stream_alarms_watch_the_metrics_the_stream_emits(emr_template):
    alarms = _alarms(emr_template)
    # The per-batch and heartbeat metrics, and the one a failing driver sends (monitoring/failure.py).
    emitted = {name for name, _, _ in status_log.EMF_METRICS} | {failure.STREAM_FAILED_METRIC}
    topic = {"Fn::ImportValue": {"Fn::Sub": "${IngestStackName}-AlertTopicArn"}}
    watched = set()
    for name, alarm in alarms.items():
        # GIVEN each stream alarm THEN it alerts the imported topic
        assert alarm["AlarmActions"] == [topic], name
        for metric in _alarm_metrics(alarm):
            watched.add(metric["MetricName"])
            if metric["Namespace"] == STREAM_METRIC_NAMESPACE:
                # AND a stream metric is one the job emits, with the Stage dimension it emits
                assert metric["MetricName"] in emitted
                assert metric["Dimensions"] == [{"Name": status_log.EMF_DIMENSION, "Value": {"Ref": "Stage"}}]
            else:
                assert metric["Namespace"] == "AWS/ElasticMapReduce"
                assert metric["Dimensions"] == [{"Name": "JobFlowId", "Value": {"Ref": "Cluster"}}]
    assert {
        "LatencyP95Ms",
        "BacklogManifests",
        "ErrorRows",
        "StreamFailed",
        "IsIdle",
        "AppsFailed",
        "MRUnhealthyNodes",
    } <= watched


def test_the_cost_estimate_prices_every_alarm_of_both_templates(ingest_template, emr_template):
    # GIVEN both templates WHEN their alarms are counted THEN `fruits cost` prices that many
    alarms = [
        name
        for template in (ingest_template, emr_template)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert Assumptions().alarms == len(alarms), sorted(alarms)


@pytest.mark.parametrize("template_path", [INGEST_TEMPLATE, EMR_TEMPLATE], ids=["sam", "emr"])
def test_dashboards_are_valid_json_once_substituted(template_path):
    # GIVEN a dashboard body WHEN its ${...} placeholders are filled like CloudFormation would
    for dashboard in resources_of_type(load_template(template_path), "AWS::CloudWatch::Dashboard").values():
        body = sub_text(dashboard["Properties"]["DashboardBody"])
        filled = re.sub(r"\$\{[^}]+\}", "1", body)
        # THEN it parses, and every widget has metrics
        widgets = json.loads(filled)["widgets"]
        assert widgets and all(widget["properties"]["metrics"] for widget in widgets)


def test_emr_cluster_runs_spark_4_on_fleets_with_spot_tasks_and_imdsv2(emr_template):
    resources = emr_template["Resources"]
    cluster = resources["Cluster"]["Properties"]
    # GIVEN the cluster THEN it is emr-spark-8.0.0 with Spark only and on-demand primary/core fleets
    assert cluster["ReleaseLabel"] == "emr-spark-8.0.0"
    assert cluster["Applications"] == [{"Name": "Spark"}]
    assert cluster["Instances"]["MasterInstanceFleet"]["TargetOnDemandCapacity"] == 1
    assert "TargetSpotCapacity" not in cluster["Instances"]["CoreInstanceFleet"]
    assert _parameter_default(emr_template, cluster["StepConcurrencyLevel"]) >= 2
    assert emr_template["Parameters"]["StepConcurrencyLevel"]["MinValue"] >= 2
    assert set(cluster["ManagedScalingPolicy"]["ComputeLimits"]) >= {
        "MinimumCapacityUnits",
        "MaximumCapacityUnits",
        "MaximumOnDemandCapacityUnits",
    }
    # AND the task fleet is spot only
    task = resources["TaskFleet"]["Properties"]
    assert resources["TaskFleet"]["Type"] == "AWS::EMR::InstanceFleetConfig"
    assert task["InstanceFleetType"] == "TASK"
    assert task["TargetOnDemandCapacity"] == 0
    assert _parameter_default(emr_template, task["TargetSpotCapacity"]) >= 1
    # AND the security configuration enforces IMDSv2, KMS at rest (S3 and local disks) and TLS in transit
    security = resources["SecurityConfiguration"]["Properties"]["SecurityConfiguration"]
    assert security["InstanceMetadataServiceConfiguration"] == {
        "MinimumInstanceMetadataServiceVersion": 2,
        "HttpPutResponseHopLimit": 1,
    }
    encryption = security["EncryptionConfiguration"]
    assert encryption["EnableAtRestEncryption"] is True and encryption["EnableInTransitEncryption"] is True
    at_rest = encryption["AtRestEncryptionConfiguration"]
    assert at_rest["S3EncryptionConfiguration"]["EncryptionMode"] == "SSE-KMS"
    assert at_rest["LocalDiskEncryptionConfiguration"]["EncryptionKeyProviderType"] == "AwsKms"
    assert (
        encryption["InTransitEncryptionConfiguration"]["TLSCertificateConfiguration"][
            "CertificateProviderType"
        ]
        == "PEM"
    )
    # AND the nodes sit in the private subnet parameter
    assert cluster["Instances"]["Ec2SubnetIds"] == [{"Ref": "PrivateSubnetId"}]


def test_emr_leaves_the_interpreter_to_each_step_and_uses_the_lake_layout(emr_template):
    cluster = emr_template["Resources"]["Cluster"]["Properties"]
    classifications = {c["Classification"]: c for c in cluster["Configurations"]}
    defaults = classifications["spark-defaults"]["ConfigurationProperties"]
    # GIVEN the Spark configuration THEN workers are reused and Arrow is on
    assert defaults["spark.python.worker.reuse"] == "true"
    assert defaults["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    # AND no cluster-wide interpreter: each step runs its packed environment (operations/deploy/steps.py),
    # which a cluster default or a spark-env export would override or contradict
    assert not {"spark.pyspark.python", "spark.pyspark.driver.python"} & set(defaults)
    assert "spark-env" not in classifications
    # AND the bootstrap script and the logs are where contracts.py and `fruits deploy` put them
    (action,) = cluster["BootstrapActions"]
    expected_key = f"{stream_deploy.BOOTSTRAP_PREFIX}{stream_deploy.BOOTSTRAP_SCRIPT_NAME}"
    assert sub_text(action["ScriptBootstrapAction"]["Path"]) == f"s3://${{LakeBucketName}}/{expected_key}"
    assert expected_key.startswith(contracts.CODE_PREFIX)
    assert sub_text(cluster["LogUri"]) == f"s3://${{LakeBucketName}}/{contracts.EMR_LOGS_PREFIX}"


def test_stack_outputs_are_the_names_fruits_deploy_reads(ingest_template, emr_template):
    sam_outputs = ingest_template["Outputs"]
    emr_outputs = emr_template["Outputs"]
    # GIVEN both stacks' outputs THEN the names the deploy command and the EMR stack rely on exist
    assert {
        "LakeBucketName",
        "UploadsBucketName",
        "LakeKmsKeyArn",
        "AlertTopicArn",
        "IngestQueueUrl",
        "IngestDeadLetterQueueUrl",
        "IngestFunctionName",
    } <= set(sam_outputs)
    assert {
        stream_deploy.CLUSTER_ID_OUTPUT,
        stream_deploy.LAKE_BUCKET_OUTPUT,
        stream_deploy.KMS_KEY_OUTPUT,
        "StreamLogGroupName",
        "InstanceProfileRoleArn",
    } <= set(emr_outputs)
    assert stream_deploy.INGEST_STACK_PARAMETER in emr_template["Parameters"]
    # AND every export is prefixed with the stack name, and each import names an existing export
    exports = {name: sub_text(out["Export"]["Name"]) for name, out in sam_outputs.items() if "Export" in out}
    assert all(export == f"${{AWS::StackName}}-{name}" for name, export in exports.items())
    imported = set(re.findall(r"\$\{IngestStackName\}-(\w+)", EMR_TEMPLATE.read_text()))
    assert imported and imported <= set(exports)


def test_samconfig_defines_eu_environments_with_reviewed_changesets():
    # GIVEN samconfig.toml
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    stages = load_template(INGEST_TEMPLATE)["Parameters"]["Stage"]["AllowedValues"]
    # THEN every Stage value of template.yaml has its environment (and default is dev's)
    assert set(config) - {"version"} == {"default", *stages}
    # AND each deploys to eu-west-3 with change-set review and its own stage
    for env, stage in (("default", "dev"), *((stage, stage) for stage in stages)):
        assert config[env]["global"]["parameters"]["region"] == "eu-west-3"
        assert config[env]["global"]["parameters"]["stack_name"] == f"fruits-ingest-{stage}"
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["confirm_changeset"] is True
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        assert f'Stage="{stage}"' in deploy["parameter_overrides"]
        assert f'PseudonymKeyParameterName="/fruits/{stage}/pseudonym-key"' in deploy["parameter_overrides"]


def test_no_queue_keeps_messages_longer_than_the_raw_uploads_live(ingest_template):
    # GIVEN the uploads' lifecycle and both queues (their messages hold the key and the uploader's IP)
    resources = ingest_template["Resources"]
    rules = resources["UploadsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    raw = next(rule for rule in rules if rule.get("Prefix") == contracts.UPLOADS_PREFIX)
    upload_lifetime_s = (
        raw["ExpirationInDays"] + raw["NoncurrentVersionExpiration"]["NoncurrentDays"]
    ) * 86400
    queue = resources["IngestQueue"]["Properties"]["MessageRetentionPeriod"]
    dlq = resources["IngestDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    # THEN the DLQ outlives the queue (AWS counts from the first enqueue) but not the raw uploads
    assert queue < dlq <= upload_lifetime_s
    assert dlq <= raw["ExpirationInDays"] * 86400


def test_dead_letter_queue_denies_insecure_transport(ingest_template):
    policies = resources_of_type(ingest_template, "AWS::SQS::QueuePolicy")
    dlq_policies = [
        ingest_template["Resources"][name]["Properties"]
        for name in policies
        if {"Ref": "IngestDeadLetterQueue"} in ingest_template["Resources"][name]["Properties"]["Queues"]
    ]
    (policy,) = dlq_policies
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_kms_key_lets_s3_use_it_only_for_the_pipeline_buckets(ingest_template):
    statements = ingest_template["Resources"]["LakeKey"]["Properties"]["KeyPolicy"]["Statement"]
    s3 = [s for s in statements if s["Principal"].get("Service") == "s3.amazonaws.com"]
    assert s3
    for statement in s3:
        arns = [sub_text(arn) for arn in as_list(statement["Condition"]["ArnLike"]["aws:SourceArn"])]
        assert arns and all(re.search(r":s3:::fruits-\$\{Stage\}-(uploads|lake)-", arn) for arn in arns)


def test_emr_cluster_is_private_and_encrypts_its_volumes(emr_template):
    resources = emr_template["Resources"]
    assert resources["Cluster"]["Properties"]["VisibleToAllUsers"] is False
    encryption = resources["SecurityConfiguration"]["Properties"]["SecurityConfiguration"]
    local_disk = encryption["EncryptionConfiguration"]["AtRestEncryptionConfiguration"][
        "LocalDiskEncryptionConfiguration"
    ]
    assert local_disk["EnableEbsEncryption"] is True
    # AND block public access is turned on, with no permitted port, before the cluster exists
    code = resources["BlockPublicAccessFunction"]["Properties"]["Code"]["ZipFile"]
    assert "put_block_public_access_configuration" in code
    assert '"PermittedPublicSecurityGroupRuleRanges": []' in code
    assert {"Key": "block-public-access", "Value": {"Ref": "EmrBlockPublicAccess"}} in resources["Cluster"][
        "Properties"
    ]["Tags"]


def test_upload_api_can_only_sign_puts_under_uploads(ingest_template):
    # GIVEN the presign function's role (a presigned POST acts with the signer's permissions)
    statements = [s for role, s in _allow_statements(ingest_template) if role == "PresignFunctionRole"]
    access = _object_access(statements, r"\$\{(?P<bucket>\w+)\.Arn\}/(?P<prefix>[a-z-]+/)\*")
    # THEN it may put objects under uploads/ of the uploads bucket, and nothing else in S3
    assert access == {"s3:PutObject": {("UploadsBucket", contracts.UPLOADS_PREFIX)}}
    s3_actions = {a for s in statements for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:PutObject"}


def test_abuse_controls_no_self_sign_up_a_daily_quota_and_a_rate_limit(ingest_template):
    resources = ingest_template["Resources"]
    # GIVEN the user pool THEN only operators create accounts (no open self sign-up)
    pool = resources["UploadUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    # AND the upload API counts each user's presigned POSTs per day in its table, and may only count
    presign = function_properties(ingest_template, "PresignFunction")["Environment"]["Variables"]
    assert presign["UPLOAD_QUOTA_TABLE"] == {"Ref": "UploadQuotaTable"}
    assert presign["DAILY_UPLOAD_QUOTA"] == {"Ref": "DailyUploadQuota"}
    statements = [s for role, s in _allow_statements(ingest_template) if role == "PresignFunctionRole"]
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert [(s["Action"], s["Resource"]) for s in dynamodb] == [
        ("dynamodb:UpdateItem", {"Fn::GetAtt": ["UploadQuotaTable", "Arn"]})
    ]
    table = resources["UploadQuotaTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    # AND sign-in is rate limited per client address by WAF
    [rule] = resources["UserPoolWebAcl"]["Properties"]["Rules"]
    assert rule["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert "Block" in rule["Action"]
    association = resources["UserPoolWebAclAssociation"]["Properties"]
    assert association["ResourceArn"] == {"Fn::GetAtt": ["UploadUserPool", "Arn"]}
    # AND the ingest knows its uploads bucket (events of any other are skipped)
    ingest = function_properties(ingest_template, "IngestFunction")["Environment"]["Variables"]
    assert ingest[ingest_config.ENV_UPLOADS_BUCKET] == {"Ref": "UploadsBucket"}


def test_upload_api_requires_a_cognito_jwt_and_the_ingest_trusts_only_the_key(ingest_template):
    resources = ingest_template["Resources"]
    auth = resources["UploadApi"]["Properties"]["Auth"]
    jwt = auth["Authorizers"][auth["DefaultAuthorizer"]]["JwtConfiguration"]
    assert "${UploadUserPool}" in sub_text(jwt["issuer"])
    assert jwt["audience"] == [{"Ref": "UploadUserPoolClient"}]
    assert "sourceIp" not in resources["UploadApi"]["Properties"]["AccessLogSettings"]["Format"]
    variables = function_properties(ingest_template, "IngestFunction")["Environment"]["Variables"]
    assert variables[ingest_config.ENV_IDENTITY_FROM_KEY] == "true"


def test_the_serverless_stack_gives_deploy_its_outputs_and_room_for_the_priced_peak():
    # GIVEN the EMR Serverless template and `fruits cost` at the largest documented scale
    from operations.cost import estimate
    from operations.deploy import APPLICATION_ID_OUTPUT, JOB_ROLE_OUTPUT, KMS_KEY_OUTPUT, LAKE_BUCKET_OUTPUT

    template = load_template(SERVERLESS_TEMPLATE)
    a = Assumptions()
    fleet = estimate(100_000_000).fleet
    # THEN `fruits deploy start --compute serverless` finds what it reads in the stack's outputs
    assert {APPLICATION_ID_OUTPUT, JOB_ROLE_OUTPUT, LAKE_BUCKET_OUTPUT, KMS_KEY_OUTPUT} <= template[
        "Outputs"
    ].keys()
    # AND the application's maximum capacity holds the driver and the executors the peak needs
    parameters = template["Parameters"]
    workers_vcpu = a.serverless_driver_vcpu + fleet.executors_peak * a.serverless_executor_vcpu
    workers_gb = a.serverless_driver_gb + fleet.executors_peak * a.serverless_executor_gb
    assert parameters["MaximumVcpu"]["Default"] >= workers_vcpu
    assert parameters["MaximumMemoryGb"]["Default"] >= workers_gb
    # AND the job role is assumable by EMR Serverless only, in this account
    (statement,) = template["Resources"]["JobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
