"""`make slides`: docs/presentation.pdf is built from the repository's own figures (fast: no Spark)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest

pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def slides(repo_root):
    spec = importlib.util.spec_from_file_location("slides_build", repo_root / "docs" / "slides" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(slides, tmp_path_factory):
    out = tmp_path_factory.mktemp("slides") / "presentation.pdf"
    figures = slides.build(out)
    reader = pypdf.PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    return {"figures": figures, "reader": reader, "text": re.sub(r"\s+", " ", text), "out": out}


def test_the_deck_has_12_to_17_pages(built):
    assert 12 <= len(built["reader"].pages) <= 17


def test_pages_are_16_by_9_and_fonts_are_embedded(built):
    for page in built["reader"].pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width), round(height)) == (960, 540)
        fonts = page["/Resources"]["/Font"]
        for font in fonts.values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            if descriptor is None:  # Type 3 glyph procedures (no font file needed)
                continue
            descriptor = descriptor.get_object()
            assert any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")), font


def test_the_cost_totals_come_from_fruits_cost(built, slides):
    # GIVEN the totals `fruits cost --images-per-day N --json` prints at the three scales
    for scale in slides.COST_SCALES:
        total = built["figures"].costs[scale]["total_usd"]
        # THEN the slides quote each of them
        assert f"{total:,.2f}" in built["text"], scale


def test_the_bench_figures_come_from_the_committed_report(built, slides):
    report = json.loads(slides.DEFAULT_BENCH.read_text())
    assert f"{report['ratio_litert_stream_vs_keras_stream']:.2f}" in built["text"]
    for runtime in report["runtimes"].values():
        assert f"{runtime['stream']['steady_images_per_s']:,.1f}" in built["text"]
    for figure in built["figures"].key_figures():
        assert figure in built["text"]


def test_the_slides_quote_the_contracts_and_the_emr_template(built):
    from fruits_core import contracts

    text = built["text"]
    for name in contracts.field_names(contracts.MANIFEST_FIELDS):
        assert name in text
    assert contracts.clean_image_key("<dt>", "<image_id>") in text
    assert "m7i.2xlarge" in text and "emr-spark-8.0.0" in text


def test_committed_pdf_is_the_current_build(built, repo_root):
    # The committed deck has the same page count and figures as a fresh build (rerun `make slides` if not).
    committed = pypdf.PdfReader(repo_root / "docs" / "presentation.pdf")
    assert len(committed.pages) == len(built["reader"].pages)
    text = re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in committed.pages))
    for figure in built["figures"].key_figures():
        assert figure in text


def test_the_title_names_author_course_and_date(built):
    first = re.sub(r"\s+", " ", built["reader"].pages[0].extract_text())
    for text in ("Fruits! data platform team", "OpenClassrooms AI Engineer", "P8 Big Data / cloud", "2026"):
        assert text in first


def test_every_iam_role_of_the_templates_is_on_the_iam_slide(built):
    from tests.infra.cfn_template import EMR_TEMPLATE, INGEST_TEMPLATE, load_template

    declared = {
        name
        for template in (INGEST_TEMPLATE, EMR_TEMPLATE)
        for name, resource in load_template(template)["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert {role.name for role in built["figures"].roles} == declared
    page = next(
        page.extract_text() for page in built["reader"].pages if "roles, one per" in page.extract_text()
    )
    assert f"IAM: {len(declared)} roles" in page
    for name in declared:
        assert name in page


def test_every_prefix_of_the_contracts_is_on_the_key_layout_slide(built):
    from fruits_core import contracts

    page = next(page.extract_text() for page in built["reader"].pages if "Key layout" in page.extract_text())
    for prefix in (contracts.UPLOADS_PREFIX, *contracts.LAKE_PREFIXES):
        assert prefix in page, prefix


def test_the_architecture_shows_the_upload_api_the_catalog_and_the_schedule(built):
    page = next(
        page.extract_text() for page in built["reader"].pages if "Architecture on AWS" in page.extract_text()
    )
    text = re.sub(r"\s+", " ", page)
    for piece in (
        "Cognito",
        "API Gateway",
        "presign",
        "Glue",
        "Athena",
        "Scheduler",
        "Iceberg",
        "tombstones/",
    ):
        assert piece in text, piece


def test_the_demonstration_slide_shows_captured_command_output(built, repo_root):
    page = next(
        page.extract_text() for page in built["reader"].pages if "Demonstration:" in page.extract_text()
    )
    text = re.sub(r"\s+", " ", page)
    demo = json.loads((repo_root / "docs" / "data" / "demo.json").read_text())
    assert "$ fruits demo" in text and "$ fruits status" in text and "read_features" in text
    assert f"k={demo['k']}" in text and f"{demo['featurized']} images" in text
    assert "not captured" not in text


def test_the_predictions_slide_quotes_the_records_and_shows_the_confusion_matrix(built, repo_root):
    page_number, page = next(
        (number, page)
        for number, page in enumerate(built["reader"].pages)
        if "Predictions:" in page.extract_text()
    )
    text = re.sub(r"\s+", " ", page.extract_text())
    demo = json.loads((repo_root / "docs" / "data" / "demo.json").read_text())
    full = json.loads((repo_root / "docs" / "data" / "predictions.json").read_text())
    paired = json.loads((repo_root / "docs" / "data" / "bench_scoring_paired.json").read_text())
    pairs = paired["runtimes"]["litert"]["scoring_paired"]
    assert f"held-out accuracy {demo['held_out_accuracy']:.3f}" in text
    assert f"{full['held_out_accuracy']:.3f} on {full['held_out_rows']} held out" in text
    assert f"{demo['model_bytes']['app_model'] / 1e6:.2f} MB" in text
    assert f"{full['app_latency_ms_p50']:.1f} ms per image" in text
    assert f"scored / unscored batches {pairs['pair_ratio']:.3f} (median of {pairs['pairs']} adjacent" in text
    cost = json.loads((repo_root / "docs" / "data" / "scoring_cost.json").read_text())
    assert f"keeps {cost['worker_ratio_with_scoring']:.4f} of its throughput" in text
    assert "Drift alarm" in text
    assert built["figures"].notebook.confusion_png is not None
    assert "/XObject" in page["/Resources"], f"page {page_number + 1} has no image"
