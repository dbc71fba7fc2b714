"""The classifier end to end on a real lake: deterministic training, stream scoring, hot swap, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fruits_classifier.training import is_held_out, train_classifier
from fruits_cli.main import main
from streaming_job.scoring.classifier import load_published, read_pointer

pytestmark = [pytest.mark.spark, pytest.mark.tf, pytest.mark.slow]


def test_rows_streamed_before_any_classifier_have_null_predictions(scored_lake):
    first = scored_lake["first_rows"]
    assert first.num_rows == 100
    for column in ("predicted_label", "prediction_confidence", "classifier_version"):
        assert first.column(column).null_count == first.num_rows


def test_training_is_deterministic_and_never_overwrites_a_version(scored_lake):
    # GIVEN the classifier trained by the fixture on the lake's labelled rows
    report = scored_lake["report"]
    lake = scored_lake["lake"].as_uri()
    assert report.published and report.train_rows + report.held_out_rows == 100
    snapshot = report.classifier.version.split("-")[1]
    assert report.classifier.version.startswith(f"clf-{snapshot}-{report.classifier.pca_version}-")
    # WHEN it is trained twice more on the table as it is now (120 rows)
    again = train_classifier(lake)
    third = train_classifier(lake)
    # THEN both give the same weights, hence the same version, which is not written twice
    assert third.classifier.version == again.classifier.version
    assert third.published is False
    for first, second in zip(third.classifier.weights, again.classifier.weights, strict=True):
        np.testing.assert_array_equal(first, second)
    # AND the report carries held-out accuracy, per-class precision/recall and a confusion matrix
    assert 0.0 <= again.held_out_accuracy <= 1.0
    assert set(again.per_class) == set(again.classifier.labels)
    assert sum(map(sum, again.confusion)) == again.held_out_rows
    assert (
        scored_lake["lake"] / "models/classifier" / again.classifier.version / "confusion_matrix.png"
    ).is_file()
    # AND the held-out rows are those the image_id hash picks, whatever the run
    held = [
        image_id for image_id in scored_lake["rows"].column("image_id").to_pylist() if is_held_out(image_id)
    ]
    assert len(held) == again.held_out_rows


def test_stream_predictions_equal_the_classifier_applied_offline(scored_lake):
    # GIVEN the rows the stream scored after the classifier was published
    rows = scored_lake["rows"].filter(
        np.asarray(
            [version is not None for version in scored_lake["rows"].column("classifier_version").to_pylist()]
        )
    )
    assert rows.num_rows == 20
    lake = scored_lake["lake"].as_uri()
    pca_version = scored_lake["report"].classifier.pca_version
    for version in set(rows.column("classifier_version").to_pylist()):
        pointer = read_pointer(lake)
        classifier = load_published(lake, {**pointer, **_pointer_of(lake, version)}, pca_version)
        mine = rows.filter(np.asarray([v == version for v in rows.column("classifier_version").to_pylist()]))
        scores = np.asarray(mine.column("features").to_pylist(), dtype=np.float32)
        labels, confidences = classifier.predict(scores)
        # THEN the stream's predictions are exactly the classifier's on the same stored features
        assert mine.column("predicted_label").to_pylist() == labels
        np.testing.assert_allclose(mine.column("prediction_confidence").to_numpy(), confidences, rtol=1e-6)


def _pointer_of(lake: str, version: str) -> dict:
    import hashlib

    from streaming_job import uris
    from streaming_job.scoring.classifier import artifact_uri

    data = uris.read_bytes(artifact_uri(lake, version))
    return {"version": version, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_classifier_published_during_a_batch_is_used_from_the_next_batch_on(scored_lake):
    # GIVEN a second classifier published while the first micro-batch of the second run was running
    swapped = scored_lake["swapped"]
    versions = scored_lake["rows"].column("classifier_version").to_pylist()
    # THEN that whole batch carries the first classifier, and the next batch the second: never mixed
    assert versions.count(swapped["first"]) == 10
    assert versions.count(swapped["second"]) == 10


def test_train_refuses_a_lake_without_models_in_one_line(tmp_path, capsys):
    assert main(["classifier", "train", "--lake", tmp_path.as_uri()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no models/" in err
