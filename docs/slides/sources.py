"""The figures the slides quote, read from the repository at build time (never typed in)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from operations import cost  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "presentation.pdf"
DEFAULT_BENCH = REPO / "docs" / "data" / "bench.json"
# `fruits bench --runtimes litert --modes alone,stream,stream_no_scoring --repeat N --json`: medians.
BENCH_REPEAT = REPO / "docs" / "data" / "bench_repeat.json"
# `python -m benchmarks.scoring_cost --json-out ...`: a worker's featurize and scoring steps, interleaved.
SCORING_COST = REPO / "docs" / "data" / "scoring_cost.json"
SCORING_PAIRED = REPO / "docs" / "data" / "bench_scoring_paired.json"
EMR_TEMPLATE = REPO / "infra" / "emr-cluster.yaml"
NOTEBOOK = REPO / "notebooks" / "local_pipeline.ipynb"
COST_SCALES = (10_000, 1_000_000, 100_000_000)
COST_REGION = "eu-west-3"


def load_bench(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def run_cost(images_per_day: int, region: str = COST_REGION) -> dict:
    """`fruits cost --images-per-day N --region R --json`, run as the command line runs it."""
    command = [
        sys.executable,
        "-m",
        "fruits_cli.main",
        "cost",
        "--images-per-day",
        str(images_per_day),
        "--region",
        region,
        "--json",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# The cost page groups as docs/operations.md does, with the one grouping of operations/cost.py.
COST_GROUPS = cost.COST_GROUPS


def group_cost(estimate: dict) -> dict[str, float]:
    """`fruits cost --json`'s items in operations.cost.COST_GROUPS, the grouping docs/operations.md shows."""
    return cost.grouped_usd((item["component"], item["usd"]) for item in estimate["items"])


def emr_defaults(template: Path = EMR_TEMPLATE) -> dict[str, str]:
    """Parameter -> Default of the EMR template (a line scan: its !Ref tags need no YAML loader)."""
    defaults: dict[str, str] = {}
    in_parameters, current = False, None
    for line in template.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_parameters = line.startswith("Parameters:")
            continue
        if not in_parameters:
            continue
        if match := re.match(r"^  ([A-Za-z0-9]+):\s*$", line):
            current = match.group(1)
        elif (match := re.match(r"^    Default:\s*(.*)$", line)) and current:
            defaults[current] = match.group(1).strip().strip('"')
    return defaults


def fmt_usd(value: float) -> str:
    return f"{value:,.2f}"


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class NotebookFigures:
    """What the committed, executed notebook shows: the 2-D scatter, the confusion matrix, the summary."""

    scatter_png: bytes | None
    summary: dict[str, str]
    confusion_png: bytes | None = None


# A notebook plot is found by the call in its cell's source, not by its position among the outputs.
SCATTER_CELL = "pca_scatter_plot("
CONFUSION_CELL = "confusion_matrix.png"


def notebook_figures(path: Path = NOTEBOOK) -> NotebookFigures:
    """The scatter and confusion PNGs and the last cell's `name  value` lines of the executed notebook."""
    if not path.exists():
        return NotebookFigures(None, {})
    cells = [
        cell for cell in json.loads(path.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"
    ]

    def png_of(marker: str) -> bytes | None:
        for cell in cells:
            if marker in "".join(cell["source"]):
                for output in cell.get("outputs", []):
                    if "image/png" in output.get("data", {}):
                        return base64.b64decode("".join(output["data"]["image/png"]))
        return None

    last = "".join(cells[-1].get("outputs", [{}])[-1].get("text", "")) if cells else ""
    summary = dict(line.rsplit(maxsplit=1) for line in last.strip().splitlines() if " " in line.strip())
    return NotebookFigures(png_of(SCATTER_CELL), summary, png_of(CONFUSION_CELL))


@dataclass(frozen=True)
class Figures:
    bench: dict
    bench_source: str
    costs: dict[int, dict]
    emr: dict[str, str]
    notebook: NotebookFigures
    demo: dict
    captured: dict[str, str]
    roles: list[Role]
    predictions: dict
    bench_repeat: dict
    scoring_cost: dict
    scoring_paired: dict

    @property
    def stream_ratio(self) -> float | None:
        return self.bench.get("ratio_litert_stream_vs_keras_stream")

    def key_figures(self) -> list[str]:
        """Strings the PDF must quote (the test checks they are in its text)."""
        figures = [fmt_usd(estimate["total_usd"]) for estimate in self.costs.values()]
        if self.stream_ratio is not None:
            figures.append(fmt_ratio(self.stream_ratio))
        for runtime in self.bench.get("runtimes", {}).values():
            steady = runtime.get("stream", {}).get("steady_images_per_s")
            if steady is not None:
                figures.append(fmt_rate(steady))
        if self.demo:
            figures.append(self.pca_headline)
        figures.extend(self.prediction_figures())
        return figures

    def prediction_figures(self) -> list[str]:
        """The predictions page's figures as it writes them (demo.json, predictions.json, bench.json)."""
        quoted = []
        if self.demo.get("held_out_accuracy") is not None:
            quoted.append(f"held-out accuracy {self.demo['held_out_accuracy']:.3f}")
            quoted.append(f"{self.demo['model_bytes']['app_model'] / 1e6:.2f} MB")
        if self.predictions:
            full = self.predictions
            quoted.append(f"{full['held_out_accuracy']:.3f} on {full['held_out_rows']}")
            quoted.append(f"{self.predictions['app_latency_ms_p50']:.1f} ms")
        paired = self.scoring_pairs
        if paired:
            quoted.append(f"scored / unscored batches {paired['pair_ratio']:.3f}")
        if self.scoring_cost:
            quoted.append(f"keeps {self.scoring_cost['worker_ratio_with_scoring']:.4f}")
        return quoted

    @property
    def scoring_pairs(self) -> dict:
        """`fruits bench --modes scoring_paired` (LiteRT): scored / unscored adjacent micro-batches."""
        return self.scoring_paired.get("runtimes", {}).get("litert", {}).get("scoring_paired", {})

    @property
    def pca_headline(self) -> str:
        """The demo's PCA as every page quotes it (tests/deliverables/test_doc_figures.py)."""
        return f"k = {self.demo['k']} for {self.demo['explained_variance'] * 100:.1f} %"


def gather(bench_path: Path) -> Figures:
    try:
        source = str(bench_path.resolve().relative_to(REPO))
    except ValueError:
        source = str(bench_path)
    return Figures(
        bench=load_bench(bench_path),
        bench_source=source,
        costs={scale: run_cost(scale) for scale in COST_SCALES},
        emr=emr_defaults(),
        notebook=notebook_figures(),
        demo=demo_record(),
        captured=captured_outputs(),
        roles=iam_roles(),
        predictions=predictions_record(),
        bench_repeat=load_bench(BENCH_REPEAT) if BENCH_REPEAT.exists() else {},
        scoring_cost=load_bench(SCORING_COST) if SCORING_COST.exists() else {},
        scoring_paired=load_bench(SCORING_PAIRED) if SCORING_PAIRED.exists() else {},
    )


# --- The demonstration: real command output captured by docs/slides/capture_demo.py ----------

DATA = REPO / "docs" / "data"
DEMO_RECORD = DATA / "demo.json"
CAPTURED = {"demo": "demo-output.txt", "status": "status-output.txt", "readback": "table-readback.txt"}


def demo_record(path: Path = DEMO_RECORD) -> dict:
    """`fruits demo --record` output: the figures the docs, the notebook and the slides share."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def predictions_record(path: Path = DATA / "predictions.json") -> dict:
    """`python -m benchmarks.predictions` on the full shared sample (docs/predictions.md quotes it too)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def captured_outputs() -> dict[str, str]:
    """The captured command outputs (`make demo-record`); a missing one reads as empty."""
    return {
        name: (DATA / file).read_text(encoding="utf-8") if (DATA / file).exists() else ""
        for name, file in CAPTURED.items()
    }


# --- IAM roles, from the templates themselves ---------------------------------------------------

TEMPLATES = (REPO / "template.yaml", REPO / "infra" / "emr-cluster.yaml")


@dataclass(frozen=True)
class Role:
    name: str
    template: str
    assumed_by: str
    services: tuple[str, ...]  # the AWS services its own policies' actions belong to
    prefixes: tuple[str, ...]  # the lake/upload prefixes named in those policies' resources
    managed: tuple[str, ...]  # AWS managed policies attached


def _cfn_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader reading the short-form intrinsics (!Ref, !Sub, ...) as plain values."""

    def intrinsic(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node, deep=True)}
        return {suffix: loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", intrinsic)
    return Loader


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for child in value.values() for text in _strings(child)]
    if isinstance(value, list):
        return [text for child in value for text in _strings(child)]
    return []


def _principal(document: dict) -> str:
    principal = document["Statement"][0]["Principal"]
    if "Service" in principal:
        services = principal["Service"] if isinstance(principal["Service"], list) else [principal["Service"]]
        return ", ".join(service.split(".")[0] for service in services)
    return "operators (account)"


def iam_roles(templates: tuple[Path, ...] = TEMPLATES) -> list[Role]:
    """Every AWS::IAM::Role the templates declare, with what its inline policies reach."""
    import yaml

    from fruits_core import contracts

    prefixes = (contracts.UPLOADS_PREFIX, *contracts.LAKE_PREFIXES)
    roles = []
    for path in templates:
        resources = yaml.load(path.read_text(encoding="utf-8"), Loader=_cfn_loader())["Resources"]  # noqa: S506
        for name, resource in resources.items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            properties = resource["Properties"]
            statements = [
                statement
                for policy in properties.get("Policies", [])
                for statement in policy["PolicyDocument"]["Statement"]
            ]
            actions = [action for statement in statements for action in _strings(statement.get("Action"))]
            resources_text = " ".join(text for st in statements for text in _strings(st.get("Resource")))
            roles.append(
                Role(
                    name=name,
                    template=str(path.relative_to(REPO)),
                    assumed_by=_principal(properties["AssumeRolePolicyDocument"]),
                    services=tuple(sorted({action.split(":")[0] for action in actions})),
                    prefixes=tuple(prefix for prefix in prefixes if f"/{prefix}" in resources_text),
                    managed=tuple(
                        text.rsplit("/", 1)[-1] for text in _strings(properties.get("ManagedPolicyArns"))
                    ),
                )
            )
    return roles
