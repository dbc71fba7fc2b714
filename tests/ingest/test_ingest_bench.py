"""The ingest benchmark runs on real images and reports what `fruits bench` expects."""

from __future__ import annotations

from benchmarks.ingest_bench import main, measure_ingest


def test_measure_ingest_reports_cold_import_and_per_image_times(sample_image_paths):
    # GIVEN three real sample images WHEN the benchmark runs on them
    result = measure_ingest(sample_image_paths[:3], 3)
    # THEN it reports positive timings for each figure, on moto S3 (moto is installed for the tests)
    assert set(result) == {"cold_import_s", "per_image_ms_median", "per_image_ms_p95", "images", "backend"}
    assert result["images"] == 3 and result["backend"] == "moto-s3"
    assert 0 < result["cold_import_s"] < 30
    assert 0 < result["per_image_ms_median"] <= result["per_image_ms_p95"]


def test_cli_prints_json(capsys, monkeypatch):
    # GIVEN a fast cold-import measurement WHEN the module is run with --json THEN one JSON object is printed
    monkeypatch.setattr("benchmarks.ingest_bench.cold_import_seconds", lambda: 0.5)
    assert main(["--n", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and '"images": 2' in out[0] and '"cold_import_s": 0.5' in out[0]
