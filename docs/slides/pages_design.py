"""Slides 1-6: the title, the brief, the architecture, the key layout, the records, anonymization."""

from __future__ import annotations

from fruits_core import contracts
from slides.drawing import Deck, arrow, box, bullets, table
from slides.sources import Figures
from slides.style import ACCENT, BODY_PT, GREEN, INK, LEFT, LINE, SMALL_PT, TABLE_PT, LayoutError

AUTHOR = "Fruits! data platform team"
COURSE = "OpenClassrooms AI Engineer \u2014 P8 Big Data / cloud"
DATE = "December 2026"


def slide_title(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Fruits! image pipeline")
    figure.text(LEFT, 0.77, "From a farmer's photo to a feature row in seconds,", fontsize=26, color=INK)
    figure.text(LEFT, 0.70, "with nothing personal kept that the models do not need.", fontsize=26, color=INK)
    bullets(
        figure,
        [
            "Ingest on AWS Lambda (validate, anonymize, quarantine), featurize on Spark Structured "
            "Streaming on EMR (MobileNetV2 broadcast + PCA), EU regions only.",
            "Every figure in these slides is produced by the project's own commands: fruits demo, "
            "fruits bench, fruits cost, the contracts module, the templates.",
            "Du clich\u00e9 de l'agriculteur \u00e0 un vecteur de caract\u00e9ristiques "
            "en quelques secondes, "
            "sans conserver de donn\u00e9e personnelle inutile (RGPD, r\u00e9gions UE).",
        ],
        top=0.60,
    )
    for row, (label, value) in enumerate((("Author", AUTHOR), ("Course", COURSE), ("Date", DATE))):
        y = 0.215 - row * 0.045
        figure.text(LEFT, y, label, fontsize=TABLE_PT, color=GREEN, weight="bold", va="top")
        figure.text(LEFT + 0.1, y, value, fontsize=TABLE_PT, color=INK, va="top")


def slide_deliverables(deck: Deck, figures: Figures) -> None:
    figure = deck.page("The brief and what was delivered")
    rows = [
        [
            "PySpark pipeline on EMR,\nmodel weights broadcast",
            "Structured Streaming job, featurizer\nspec broadcast, built once per worker",
            "streaming_job/, infra/emr-cluster.yaml",
        ],
        [
            "Documented cloud architecture",
            "SAM ingest stack + EMR stack,\nEU-only, KMS, least privilege",
            "template.yaml, docs/operations.md",
        ],
        [
            "Local PySpark notebook,\ncomplete PCA pipeline",
            "Executed walk-through on the\nbundled real images",
            "notebooks/local_pipeline.ipynb",
        ],
        [
            "PDF presentation",
            "These slides, rebuilt by make slides\nfrom the project's own figures",
            "docs/presentation.pdf",
        ],
    ]
    bottom = table(
        figure, ["Asked for", "Delivered", "Where"], rows, columns=[LEFT, 0.34, 0.66], top=0.82, row_h=0.066
    )
    bullets(
        figure,
        [
            "make demo runs the whole pipeline offline on real images; make test proves it "
            "(CI runs exactly that)."
        ],
        top=bottom - 0.05,
    )


def slide_architecture(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        "Architecture on AWS (EU region, eu-west-3 by default)",
        "template.yaml, infra/emr-cluster.yaml, docs/operations.md",
    )
    small, white, warn = SMALL_PT, "white", "#fbeee6"
    # row 1: sign-in and the upload grant
    app = box(figure, 0.02, 0.71, 0.10, 0.12, "Mobile app", face=white, weight="bold")
    cognito = box(figure, 0.16, 0.71, 0.13, 0.12, "Cognito\nuser pool\nsign-in, JWT", size=small)
    api = box(figure, 0.33, 0.71, 0.14, 0.12, "API Gateway\nupload API\nJWT authorizer", size=small)
    presign = box(figure, 0.51, 0.71, 0.13, 0.12, "presign Lambda\nPUT URL for\nuploads/<sub>/", size=small)
    ssm = box(figure, 0.86, 0.71, 0.11, 0.12, "SSM\npseudonym key", face=white, size=small)
    arrow(figure, (app[0] + app[2], 0.77), (cognito[0], 0.77))
    arrow(figure, (cognito[0] + cognito[2], 0.77), (api[0], 0.77))
    arrow(figure, (api[0] + api[2], 0.77), (presign[0], 0.77))
    # row 2: the upload and its processing
    uploads = box(figure, 0.16, 0.50, 0.15, 0.12, "S3 uploads\nuploads/<sub>/\n<hex>.jpg, 1 day", size=small)
    sqs = box(figure, 0.36, 0.50, 0.10, 0.12, "SQS\nqueue", size=small)
    ingest = box(
        figure,
        0.51,
        0.49,
        0.23,
        0.14,
        "ingest Lambda\nvalidate \u00b7 anonymize\nre-encode \u00b7 quarantine",
        weight="bold",
    )
    dlq = box(figure, 0.36, 0.36, 0.10, 0.08, "DLQ, alarm", face=warn, edge=ACCENT, size=small)
    arrow(
        figure, (app[0] + app[2] / 2, app[1]), (uploads[0], 0.56), "PUT (URL)", label_offset=(-0.035, -0.01)
    )
    arrow(figure, (uploads[0] + uploads[2], 0.56), (sqs[0], 0.56), "event")
    arrow(figure, (sqs[0] + sqs[2], 0.56), (ingest[0], 0.56), "batch")
    arrow(figure, (0.41, sqs[1]), (0.41, dlq[1] + dlq[3]), color=ACCENT)
    arrow(figure, (ssm[0] + ssm[2] / 2, ssm[1]), (ingest[0] + ingest[2], 0.58), "key", dashed=True)
    # row 3: the lake
    figure.text(0.51, 0.445, "S3 lake (SSE-KMS)", fontsize=small, color=GREEN, weight="bold")
    clean = box(figure, 0.51, 0.33, 0.10, 0.09, "clean/", size=small)
    manifests = box(figure, 0.63, 0.33, 0.11, 0.09, "manifests/", size=small)
    quarantine = box(figure, 0.76, 0.33, 0.11, 0.09, "quarantine/", face=warn, edge=ACCENT, size=small)
    box(figure, 0.89, 0.33, 0.09, 0.09, "tombstones/\naudit/", face=white, size=small)
    for target in (clean, manifests, quarantine):
        start_x = min(target[0] + target[2] / 2, ingest[0] + ingest[2] - 0.01)
        arrow(figure, (start_x, ingest[1]), (target[0] + target[2] / 2, target[1] + target[3]))
    scheduler = box(
        figure, 0.16, 0.33, 0.17, 0.10, "EventBridge Scheduler\ndaily: lake maintain", face=white, size=small
    )
    # row 4: the stream, the tables, their readers
    emr = box(
        figure,
        0.16,
        0.07,
        0.33,
        0.18,
        "EMR: Spark Structured Streaming\nreadStream manifests/ \u2192 mapInPandas:\n"
        "decode \u00b7 MobileNetV2 (broadcast) \u00b7 PCA\n\u2192 foreachBatch: one commit per table",
        size=small,
        weight="bold",
    )
    tables = box(figure, 0.53, 0.08, 0.14, 0.14, "Iceberg tables\nfruits.features\nfruits.errors", size=small)
    glue = box(figure, 0.70, 0.08, 0.12, 0.14, "Glue Data\nCatalog", size=small)
    athena = box(figure, 0.85, 0.08, 0.12, 0.14, "Athena\n(consumers)", face=white, size=small)
    arrow(figure, (manifests[0] + 0.02, manifests[1]), (0.45, emr[1] + emr[3]))
    arrow(figure, (clean[0] + 0.02, clean[1]), (0.40, emr[1] + emr[3]), dashed=True)
    arrow(figure, (0.245, scheduler[1]), (0.245, emr[1] + emr[3]), "step", label_offset=(0.02, -0.01))
    arrow(figure, (emr[0] + emr[2], 0.15), (tables[0], 0.15))
    arrow(figure, (tables[0] + tables[2], 0.15), (glue[0], 0.15))
    arrow(figure, (glue[0] + glue[2], 0.15), (athena[0], 0.15))
    box(
        figure,
        0.02,
        0.07,
        0.11,
        0.37,
        "Across all:\n\nKMS key\n\nCloudWatch:\nEMF, alarms\n\nIAM: one role\nper component\n\nEU-only rule",
        face=white,
        size=small,
    )


def key_layout() -> list[list[str]]:
    """One row per prefix of fruits_core.contracts (uploads bucket + LAKE_PREFIXES): a prefix added there
    without a row here fails the build, so the slide cannot fall behind the contracts."""
    c = contracts
    rows = {
        c.UPLOADS_PREFIX: (
            "uploads/<sub>/<hex>.jpg (uploads bucket)",
            "app (presigned)",
            "ingest",
            "raw, 1 day",
        ),
        c.CLEAN_PREFIX: (c.clean_image_key("<dt>", "<image_id>"), "ingest", "stream", "pixels, no EXIF"),
        c.MANIFESTS_PREFIX: (c.manifest_key("<dt>", "<image_id>"), "ingest", "stream", "manifest JSON"),
        c.QUARANTINE_PREFIX: (c.quarantine_key("<dt>", "<image_id>"), "ingest", "operators", "reason code"),
        c.FEATURES_PREFIX: (c.FEATURES_PREFIX + "features-<uuid>/", "stream", "consumers", "fruits.features"),
        c.ERRORS_PREFIX: (c.ERRORS_PREFIX + "errors-<uuid>/", "stream", "operators", "fruits.errors"),
        c.CHECKPOINTS_PREFIX: (
            c.CHECKPOINTS_PREFIX + "features/epoch=<n>/",
            "stream",
            "stream",
            "exactly once",
        ),
        c.STATUS_PREFIX: (c.STATUS_PREFIX, "stream", "fruits status", "heartbeat, health"),
        c.MODELS_PREFIX: (
            c.featurizer_key() + ", " + c.PCA_KEY + "/",
            "model, fit-pca",
            "stream",
            "artifacts",
        ),
        c.CODE_PREFIX: (c.CODE_PREFIX + "<version>/, env/", "deploy upload", "EMR steps", "job + venv"),
        c.EMR_LOGS_PREFIX: (c.EMR_LOGS_PREFIX, "EMR", "operators", "cluster logs"),
        c.ARCHIVE_PREFIX: (c.MANIFESTS_ARCHIVE_PREFIX, "stream", "recovery", "done manifests"),
        c.CATALOG_PREFIX: (
            c.CATALOG_PREFIX + " (local; Glue on AWS)",
            "fruits_lake",
            "readers",
            "table catalog",
        ),
        c.CONTROL_PREFIX: (c.CONTROL_PREFIX, "deploy stop", "stream", "stop marker"),
        c.AUDIT_PREFIX: (
            c.erasure_audit_key("<dt>", "<request>"),
            "subject erase",
            "auditors",
            "no personal data",
        ),
        c.TOMBSTONES_PREFIX: (c.TOMBSTONES_PREFIX + "<pseudonym>", "subject erase", "ingest", "drop uploads"),
    }
    prefixes = (c.UPLOADS_PREFIX, *c.LAKE_PREFIXES)
    missing = [prefix for prefix in prefixes if prefix not in rows]
    if missing:
        raise LayoutError(f"the key-layout slide has no row for contracts prefix(es) {missing}")
    return [list(rows[prefix]) for prefix in prefixes]


def slide_data_path(deck: Deck, figures: Figures) -> None:
    figure = deck.page("Key layout: every prefix and who uses it", "fruits_core/contracts.py")
    table(
        figure,
        ["Key", "Written by", "Read by", "What"],
        key_layout(),
        columns=[LEFT, 0.50, 0.64, 0.78],
        top=0.85,
        row_h=0.044,
        size=13,
    )


def _fields(fields: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _ in fields)


def slide_records(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        f"Records: manifest v1 and features v{contracts.FEATURES_SCHEMA_VERSION}", "fruits_core/contracts.py"
    )
    c = contracts
    y = 0.82
    for title, fields, note in (
        (
            f"Manifest v{c.MANIFEST_SCHEMA_VERSION} (JSON, one per accepted image)",
            c.MANIFEST_FIELDS,
            "written by the Lambda; the stream's input (explicit schema, bad rows go to errors/)",
        ),
        (
            f"Features v{c.FEATURES_SCHEMA_VERSION} (Iceberg table fruits.features, by day(uploaded_at))",
            c.FEATURES_FIELDS,
            "features = the k PCA scores; pca_residual = reconstruction error (out-of-distribution score)",
        ),
        (
            f"Quarantine record v{c.QUARANTINE_SCHEMA_VERSION} (JSON)",
            c.QUARANTINE_FIELDS,
            "reasons: " + ", ".join(reason.value for reason in c.QuarantineReason),
        ),
    ):
        figure.text(LEFT, y, title, fontsize=BODY_PT, weight="bold", color=GREEN, va="top")
        y = bullets(figure, [_fields(fields), "- " + note], top=y - LINE * 1.05, size=15, gap=0.15)
        y -= 0.025


def slide_anonymization(deck: Deck, figures: Figures) -> None:
    figure = deck.page(
        "Anonymization in the ingest Lambda", "docs/gdpr.md, lambdas/ingest/fruits_ingest/anonymize.py"
    )
    c = contracts
    rows = [
        [c.META_USER_ID, "pseudonymised", "subject_id = HMAC-SHA256(SSM key, user id)"],
        [
            c.META_LAT + " / " + c.META_LON,
            "coarsened",
            f"region = geohash precision {c.GEOHASH_PRECISION} (~39 x 20 km)",
        ],
        [c.META_CAPTURED_AT, "coarsened", "captured_hour = UTC, truncated to the hour"],
        [c.META_LABEL, "vocabulary", "a known fruit (any script) -> slug; anything else null"],
        [c.META_APP_VERSION, "kept", "app_version"],
        [c.META_DEVICE_ID + ", file name, key, IP", "dropped", "never copied to any record, log or metric"],
        ["EXIF (GPS, serial, time), ICC, XMP", "dropped", "clean JPEG re-encoded from decoded pixels"],
        ["raw upload", "deleted", "uploads bucket expires after 1 day"],
    ]
    bottom = table(
        figure,
        ["Upload metadata (x-amz-meta-*)", "Fate", "In the manifest / features"],
        rows,
        columns=[LEFT, 0.40, 0.56],
        top=0.84,
        row_h=0.056,
    )
    bullets(
        figure,
        [
            "Tests search every log line, record and Parquet file for the raw user id, device id, "
            "coordinates, capture time and file name: none may appear."
        ],
        top=bottom - 0.04,
        size=16,
    )
