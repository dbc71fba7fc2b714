"""Fitting the PCA with Spark ML on real images; parity of the worker projection with Spark's transform."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from fruits_cli import fit_pca as fit_pca_command
from fruits_core.errors import ConfigError
from streaming_job import uris
from streaming_job.featurizer.pca import (
    PcaError,
    PcaVersionMismatch,
    choose_k,
    fit_pca,
    load_pca,
    principal_components,
)
from streaming_job.featurizer.preprocess import decode_and_resize
from tests.streaming.featurizer_testkit import TEST_INPUT_SIZE, seeded_featurizer, seeded_model_featurizer

BROKEN_IMAGES = 2


@pytest.fixture(scope="module")
def fitted(spark, sample_image_paths, tmp_path_factory):
    """A PCA fitted (k by 95% variance) on the 100 bundled images plus a missing and a corrupt one."""
    work = tmp_path_factory.mktemp("pca")
    corrupt = work / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    image_uris = [path.as_uri() for path in sample_image_paths] + [
        (work / "missing.jpg").as_uri(),
        corrupt.as_uri(),
    ]
    out = (work / "models" / "pca").as_uri()
    sidecar = fit_pca(spark, image_uris, seeded_featurizer()[0], out)
    return {"out": out, "sidecar": sidecar, "image_uris": image_uris}


# --- choosing k (pure) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variance", "target", "expected"),
    [
        ([0.5, 0.3, 0.15, 0.05], 0.95, 3),
        ([0.5, 0.3, 0.15, 0.05], 0.5, 1),
        ([0.5, 0.3, 0.15, 0.05], 1.0, 4),
        ([0.4, 0.3], 0.95, 2),  # never reached: all components
    ],
)
def test_k_is_the_fewest_components_reaching_the_target(variance, target, expected):
    assert choose_k(variance, target) == expected


def test_target_variance_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"target variance must be in \(0, 1\]"):
        choose_k([0.5, 0.5], 1.5)


# --- fitting on real images -------------------------------------------------------


@pytest.mark.spark
@pytest.mark.tf
def test_fit_writes_model_and_sidecar_with_k_chosen_by_explained_variance(fitted, sample_image_paths):
    # GIVEN the fit on 100 real images and 2 broken ones
    sidecar, out = fitted["sidecar"], fitted["out"]
    # THEN the sidecar describes the fit: k reaching 95%, per-component and cumulative variance,
    # the images used and skipped, and the featurizer version it belongs to
    assert sidecar["model_version"] == seeded_featurizer()[1]
    assert sidecar["sample_size"] == 100 and sidecar["images_failed"] == BROKEN_IMAGES
    k = sidecar["k"]
    assert 1 <= k < 100 and len(sidecar["explained_variance"]) == k
    assert sidecar["cumulative_explained_variance"][-1] >= 0.95
    assert k == 1 or sidecar["cumulative_explained_variance"][-2] < 0.95
    assert sidecar["pca_version"].startswith(f"pca-k{k}-")
    assert sidecar["target_variance"] == 0.95 and sidecar["fitted_at"].endswith("Z")
    # AND the explained variance is that of a centred PCA of the same real features (NumPy SVD)
    features = seeded_model_featurizer().features(
        np.stack([decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in sample_image_paths])
    )
    centred = features.astype(np.float64) - features.astype(np.float64).mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    ratios = singular**2 / (singular**2).sum()
    np.testing.assert_allclose(sidecar["explained_variance"], ratios[:k], atol=1e-6)
    # AND both artifacts are on disk, the sidecar being what was returned
    assert json.loads(uris.read_bytes(f"{out}/pca.json")) == sidecar
    assert uris.exists(f"{out}/spark_model/metadata")


@pytest.mark.spark
@pytest.mark.tf
def test_worker_projection_equals_the_saved_spark_pipeline_transform(spark, fitted, sample_image_paths):
    # GIVEN the saved Spark ML pipeline and the arrays the stream projects with
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import array_to_vector

    projection = load_pca(spark, fitted["out"], seeded_featurizer()[1])
    pipeline = PipelineModel.load(f"{fitted['out']}/spark_model")
    # AND the real features of 40 images (a sample the PCA was fitted on, and 20 it never saw)
    paths = sample_image_paths[::5] + sample_image_paths[1::5]
    features = seeded_model_featurizer().features(
        np.stack([decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in paths])
    )
    rows = [(vector.tolist(),) for vector in features]
    # WHEN Spark transforms them and the worker projection projects them
    frame = spark.createDataFrame(rows, "features array<float>")
    transformed = pipeline.transform(frame.select(array_to_vector("features").alias("features_vector")))
    spark_scores = np.array([row.pca_features.toArray() for row in transformed.collect()])
    scores, residual = projection.project(features)
    # THEN the scores agree within 1e-4, and the residual completes them to the centred norm
    assert scores.shape == (len(rows), projection.k)
    np.testing.assert_allclose(scores, spark_scores, atol=1e-4)
    centred_norm = np.linalg.norm(features.astype(np.float64) - projection.mean, axis=1)
    np.testing.assert_allclose(
        residual**2 + (scores.astype(np.float64) ** 2).sum(axis=1), centred_norm**2, rtol=1e-3
    )
    assert residual.min() > 0


@pytest.mark.spark
@pytest.mark.tf
def test_a_pca_fitted_on_another_model_version_is_refused(spark, fitted):
    with pytest.raises(
        PcaVersionMismatch, match=r"fitted on featurizer mobilenetv2-seeded-keras-96-.* refit"
    ):
        load_pca(spark, fitted["out"], "mobilenetv2-imagenet-224-0123456789ab")


@pytest.mark.spark
@pytest.mark.tf
def test_refits_of_the_same_images_give_the_same_model_and_a_fixed_k_is_kept(
    spark, sample_image_paths, tmp_path
):
    # GIVEN 25 real images (fewer than the 1280 features: the rank-deficient case on which
    # Spark 4.0.1's own PCA intermittently returns wrong components)
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import array_to_vector

    paths = sample_image_paths[::4]
    image_uris = [path.as_uri() for path in paths]
    # WHEN fitted twice by explained variance, and once with k=5
    fits = [
        fit_pca(spark, image_uris, seeded_featurizer()[0], (tmp_path / f"auto{n}").as_uri()) for n in range(2)
    ]
    sidecar = fit_pca(spark, image_uris, seeded_featurizer()[0], (tmp_path / "k5").as_uri(), k=5)
    # THEN the refit has the same k and spectrum, equal to NumPy's SVD of the centred features
    features = seeded_model_featurizer().features(
        np.stack([decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in paths])
    )
    centred = features.astype(np.float64) - features.astype(np.float64).mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    ratios = singular**2 / (singular**2).sum()
    assert len({fit["k"] for fit in fits}) == 1
    k = fits[0]["k"]
    assert k == choose_k(ratios, 0.95)
    for fit in fits:
        np.testing.assert_allclose(fit["explained_variance"], ratios[:k], atol=1e-6)
    model_version = seeded_featurizer()[1]
    first, again = (load_pca(spark, (tmp_path / f"auto{n}").as_uri(), model_version) for n in range(2))
    np.testing.assert_allclose(again.components, first.components, atol=1e-6)
    # AND a fixed k is kept, with orthonormal components and NumPy's spectrum
    projection = load_pca(spark, (tmp_path / "k5").as_uri(), seeded_featurizer()[1])
    assert sidecar["k"] == 5 and sidecar["target_variance"] is None
    np.testing.assert_allclose(projection.components.T @ projection.components, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(sidecar["explained_variance"], ratios[:5], atol=1e-6)
    # AND Spark's own transform of the saved pipeline agrees with the worker projection
    frame = spark.createDataFrame([(row.tolist(),) for row in features], "features array<float>")
    transformed = PipelineModel.load((tmp_path / "k5" / "spark_model").as_uri()).transform(
        frame.select(array_to_vector("features").alias("features_vector"))
    )
    spark_scores = np.array([row.pca_features.toArray() for row in transformed.collect()])
    np.testing.assert_allclose(projection.project(features)[0], spark_scores, atol=1e-4)


def test_principal_components_are_the_covariance_eigenvectors_largest_first_with_a_fixed_sign():
    # GIVEN the covariance of data with known spread along three orthonormal directions
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 3)))
    covariance = basis @ np.diag([1.0, 4.0, 2.0]) @ basis.T
    # WHEN decomposed
    components, explained = principal_components(covariance)
    # THEN the variance ratios come largest first and the leading components span the same directions
    np.testing.assert_allclose(explained[:3], [4 / 7, 2 / 7, 1 / 7], atol=1e-12)
    np.testing.assert_allclose(explained[3:], 0.0, atol=1e-12)
    for component, direction in zip(components[:, :3].T, basis[:, [1, 2, 0]].T, strict=True):
        assert abs(component @ direction) == pytest.approx(1.0)
    # AND each component's largest entry is positive (a refit cannot flip signs)
    leading = components[np.abs(components).argmax(axis=0), np.arange(6)]
    assert np.all(leading > 0)
    np.testing.assert_array_equal(principal_components(covariance)[0], components)


def test_features_that_do_not_vary_are_refused():
    with pytest.raises(PcaError, match="do not vary"):
        principal_components(np.zeros((4, 4)))


def test_loading_a_pca_that_was_never_fitted_says_what_to_do(tmp_path):
    with pytest.raises(PcaError, match="run `fruits fit-pca`"):
        load_pca(None, tmp_path.as_uri(), "any")


def test_too_small_a_sample_for_k_is_refused_before_any_work(tmp_path):
    # GIVEN 3 images and k=5 (a PCA needs >= k+1 samples)
    image_uris = [(tmp_path / f"{index}.jpg").as_uri() for index in range(3)]
    # WHEN / THEN the fit is refused with the numbers, before Spark or TensorFlow are touched
    with pytest.raises(PcaError, match=r"need >= 6, got 3"):
        fit_pca(None, image_uris, "file:///nowhere/featurizer.keras", tmp_path.as_uri(), k=5)


@pytest.mark.spark
@pytest.mark.tf
def test_fit_pca_command_with_a_fixed_k_on_an_images_folder(spark, sample_images_dir, tmp_path, capsys):
    # GIVEN `fruits fit-pca` pointed at the bundled <label>/<image> folder with --k 3
    parser = argparse.ArgumentParser()
    fit_pca_command.add_arguments(parser)
    out = (tmp_path / "pca").as_uri()
    args = parser.parse_args(
        [
            "--images",
            str(sample_images_dir),
            "--featurizer",
            seeded_featurizer()[0],
            "--out",
            out,
            "--k",
            "3",
            "--sample-size",
            "12",
            "--master",
            "local[2]",
        ]
    )
    # WHEN it runs
    assert fit_pca_command.run(args) == 0
    # THEN it fits exactly k=3 on the 12-image sample and prints the summary
    summary = json.loads(capsys.readouterr().out)
    assert summary["k"] == 3 and summary["sample_size"] == 12
    sidecar = json.loads(uris.read_bytes(f"{out}/pca.json"))
    assert sidecar["k"] == 3 and sidecar["target_variance"] is None
    assert len(load_pca(spark, out, seeded_featurizer()[1]).explained_variance) == 3
    # AND the shared session is still usable (the command stops only a session it started)
    assert spark.range(3).count() == 3


def test_fit_pca_command_refuses_too_few_images(sample_images_dir, tmp_path):
    from fruits_core.errors import ConfigError

    parser = argparse.ArgumentParser()
    fit_pca_command.add_arguments(parser)
    args = parser.parse_args(
        [
            "--images",
            str(sample_images_dir / "apple"),
            "--out",
            tmp_path.as_uri(),
            "--featurizer",
            (tmp_path / "f.keras").as_uri(),
            "--k",
            "50",
        ]
    )
    with pytest.raises(ConfigError, match=r"found 25 images .* needs >= 51"):
        fit_pca_command.run(args)


def fit_pca_args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fit_pca_command.add_arguments(parser)
    return parser.parse_args(["--lake", (tmp_path / "lake").as_uri(), *extra])


def test_fit_pca_refuses_to_replace_the_lakes_pca_without_the_flag(tmp_path):
    # GIVEN a lake whose models/pca holds the PCA the features table was written with
    pca_dir = tmp_path / "lake" / "models" / "pca"
    pca_dir.mkdir(parents=True)
    (pca_dir / "pca.json").write_text(json.dumps({"pca_version": "pca-k15-343f4a018c0b", "k": 15}))
    # WHEN `fruits fit-pca --lake` runs again THEN it refuses, naming the PCA and the way forward
    with pytest.raises(ConfigError) as refused:
        fit_pca_command.run(fit_pca_args(tmp_path))
    message = str(refused.value)
    assert "pca-k15-343f4a018c0b" in message and "--replace" in message and "--new-model-table" in message
    assert json.loads((pca_dir / "pca.json").read_text())["k"] == 15  # untouched
    # AND with --replace it goes on to the fit (here: stops at the empty clean/ listing)
    with pytest.raises(ConfigError, match="found 0 images"):
        fit_pca_command.run(fit_pca_args(tmp_path, "--replace"))


def test_fit_pca_on_an_empty_output_needs_no_flag(tmp_path):
    with pytest.raises(ConfigError, match="found 0 images"):
        fit_pca_command.run(fit_pca_args(tmp_path))
