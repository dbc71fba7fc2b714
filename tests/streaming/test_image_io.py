"""Reading image bytes by URI: `file://` and `s3://` (moto), one reused client, errors as values."""

from __future__ import annotations

import pytest

from fruits_core.lake_uris import file_uri
from streaming_job import uris
from streaming_job.featurizer import worker_cache
from streaming_job.featurizer.image_io import (
    DEFAULT_READ_THREADS_PER_CORE,
    READ_THREADS_PER_CORE_ENV,
    ImageReader,
    read_threads,
    threads_per_core_from_env,
)
from streaming_job.featurizer.preprocess import ImageDecodeError

REGION = "eu-west-3"
BUCKET = "fruits-test-lake"


@pytest.fixture
def s3_bucket(mocked_aws):
    """A moto S3 bucket; fake credentials so nothing can reach AWS."""
    uris.s3_client().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return BUCKET


# --- uris ---------------------------------------------------------------------


def test_local_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    # GIVEN a target in a directory that does not exist yet
    target = (tmp_path / "models" / "pca" / "pca.json").as_uri()
    # WHEN bytes are written, then overwritten
    uris.write_bytes(target, b"first")
    uris.write_bytes(target, b"second")
    # THEN the file holds the last write and no hidden temporary file is left beside it
    assert uris.read_bytes(target) == b"second"
    assert [path.name for path in (tmp_path / "models" / "pca").iterdir()] == ["pca.json"]


def test_local_listing_is_sorted_filtered_and_skips_in_flight_names(tmp_path):
    # GIVEN images in dt= folders, a non-image, a hidden in-flight file and a Spark marker
    for name in (
        "dt=2024-01-02/b.jpg",
        "dt=2024-01-01/a.jpg",
        "dt=2024-01-01/notes.txt",
        "dt=2024-01-01/.c.jpg.tmp",
        "dt=2024-01-01/_SUCCESS",
        "_staging/d.jpg",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    # WHEN listing the prefix for .jpg
    listed = uris.list_uris(tmp_path.as_uri(), ".jpg")
    # THEN only the visible images come back, sorted, as file:// URIs
    assert listed == [
        file_uri(tmp_path / "dt=2024-01-01/a.jpg"),
        file_uri(tmp_path / "dt=2024-01-02/b.jpg"),
    ]
    assert uris.list_uris((tmp_path / "missing").as_uri()) == []


def test_local_paths_uris_and_their_errors(tmp_path):
    assert uris.to_uri(tmp_path) == tmp_path.as_uri()
    assert uris.local_path(uris.to_uri(tmp_path / "a b.jpg")) == tmp_path / "a b.jpg"
    assert uris.exists(tmp_path.as_uri()) and not uris.exists((tmp_path / "nope").as_uri())
    with pytest.raises(FileNotFoundError):
        uris.read_bytes((tmp_path / "nope").as_uri())
    with pytest.raises(uris.UnsupportedUriError, match="not a local URI"):
        uris.local_path("s3://bucket/key")
    with pytest.raises(uris.UnsupportedUriError, match="unsupported URI scheme"):
        uris.to_uri("https://example.com/a.jpg")


def test_s3_write_read_exists_and_list(s3_bucket):
    # GIVEN objects written through the URI helpers
    uris.write_bytes(f"s3://{s3_bucket}/lake/clean/dt=2024-01-01/a.jpg", b"A")
    uris.write_bytes(f"s3://{s3_bucket}/lake/clean/dt=2024-01-01/b.json", b"B")
    uris.write_bytes(f"s3://{s3_bucket}/lake/clean-other/c.jpg", b"C")
    # THEN they read back, exist, and a prefix lists only its own folder's matching keys
    assert uris.read_bytes(f"s3://{s3_bucket}/lake/clean/dt=2024-01-01/a.jpg") == b"A"
    assert uris.exists(f"s3://{s3_bucket}/lake/clean/dt=2024-01-01/a.jpg")
    assert not uris.exists(f"s3://{s3_bucket}/lake/clean/missing.jpg")
    assert uris.list_uris(f"s3://{s3_bucket}/lake/clean", ".jpg") == [
        f"s3://{s3_bucket}/lake/clean/dt=2024-01-01/a.jpg"
    ]
    with pytest.raises(FileNotFoundError, match="no such object"):
        uris.read_bytes(f"s3://{s3_bucket}/lake/clean/missing.jpg")


# --- ImageReader --------------------------------------------------------------


def test_reader_returns_bytes_and_errors_in_input_order_for_local_files(sample_image_paths, tmp_path):
    # GIVEN two real images around a missing one
    good = [path.as_uri() for path in sample_image_paths[:2]]
    missing = (tmp_path / "gone.jpg").as_uri()
    reader = ImageReader(threads=4)
    # WHEN read together
    results = reader.read_many([good[0], missing, good[1]])
    # THEN each position holds that URI's bytes or its exception; nothing raised
    assert results[0] == sample_image_paths[0].read_bytes()
    assert isinstance(results[1], FileNotFoundError)
    assert results[2] == sample_image_paths[1].read_bytes()


def test_reader_loads_real_s3_images_with_one_reused_client(s3_bucket, sample_image_paths):
    # GIVEN real images uploaded to (moto) S3 and a missing key among them
    client = uris.s3_client()
    keys = [f"clean/dt=2024-01-01/{index}.jpg" for index in range(6)]
    for key, path in zip(keys, sample_image_paths[::17], strict=False):
        client.put_object(Bucket=s3_bucket, Key=key, Body=path.read_bytes())
    image_uris = [f"s3://{s3_bucket}/{key}" for key in keys] + [f"s3://{s3_bucket}/clean/none.jpg"]
    reader = ImageReader(threads=4)
    # WHEN loaded (read + decode) twice, as two batches would be
    first = reader.load_many(image_uris, 96)
    client_after_first = reader._s3()
    second = reader.load_many(image_uris, 96)
    # THEN the images decode, the missing key is a FileNotFoundError, and the client was reused
    assert all(item.shape == (96, 96, 3) for item in first[:6])
    assert isinstance(first[6], FileNotFoundError) and isinstance(second[6], FileNotFoundError)
    assert reader._s3() is client_after_first


def test_undecodable_bytes_come_back_as_a_decode_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert isinstance(ImageReader(threads=1).load_many([bad.as_uri()], 96)[0], ImageDecodeError)


def test_an_image_over_the_size_cap_is_an_error_value_with_its_reason(tmp_path, s3_bucket):
    from streaming_job.featurizer.featurize import classify_error

    # GIVEN a 10-byte cap, a 10-byte and an 11-byte file, locally and on S3
    small, large = tmp_path / "small.jpg", tmp_path / "large.jpg"
    small.write_bytes(b"x" * 10)
    large.write_bytes(b"x" * 11)
    client = uris.s3_client()
    client.put_object(Bucket=s3_bucket, Key="clean/large.jpg", Body=b"x" * 11)
    reader = ImageReader(threads=2, max_bytes=10)
    # WHEN read THEN the small one is read whole, the large ones are errors classified image_too_large
    small_bytes, local_large, s3_large = reader.read_many(
        [small.as_uri(), large.as_uri(), f"s3://{s3_bucket}/clean/large.jpg"]
    )
    assert small_bytes == b"x" * 10
    for error in (local_large, s3_large):
        assert classify_error(error)[0] == "image_too_large"


def unblock(fifo) -> None:
    """Open a FIFO for writing and close it: a reader stuck opening it gets an empty read and ends."""
    import contextlib
    import os

    with contextlib.suppress(OSError):  # no reader left
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_read_that_hangs_is_abandoned_after_the_timeout_and_the_others_are_read(tmp_path):
    import os
    import time

    from streaming_job.featurizer.featurize import classify_error

    # GIVEN a file whose read blocks forever (a FIFO no one writes: a stuck mount behaves the same) and a
    # normal file, read by 2 threads with a 0.5 s timeout
    stuck = tmp_path / "stuck.jpg"
    os.mkfifo(stuck)
    good = tmp_path / "good.jpg"
    good.write_bytes(b"jpeg bytes")
    reader = ImageReader(threads=2, timeout_seconds=0.5)
    try:
        # WHEN three reads run, two of them on the stuck file
        started = time.monotonic()
        first, second, readable = reader.read_many([stuck.as_uri(), stuck.as_uri(), good.as_uri()])
        elapsed = time.monotonic() - started
        # THEN each stuck read is an error value classified image_read_timeout, the good file is read,
        # and the batch waited about one timeout (the reads overlap), not forever
        assert classify_error(first) == ("image_read_timeout", "ImageReadTimeoutError: no bytes within 0.5 s")
        assert classify_error(second)[0] == "image_read_timeout"
        assert readable == b"jpeg bytes"
        assert 0.5 <= elapsed < 3
        # AND the pool's threads are free again: the next read is served at once
        assert reader.read_many([good.as_uri()]) == [b"jpeg bytes"]
    finally:
        unblock(stuck)


def test_a_reader_refuses_a_timeout_that_is_not_positive():
    with pytest.raises(ValueError, match="timeout_seconds must be > 0"):
        ImageReader(timeout_seconds=0)


# --- read threads from the task's cores --------------------------------------------


def test_read_threads_are_the_task_cores_times_the_io_factor():
    assert read_threads(1) == DEFAULT_READ_THREADS_PER_CORE
    assert read_threads(4) == 4 * DEFAULT_READ_THREADS_PER_CORE
    assert read_threads(2, threads_per_core=3) == 6
    with pytest.raises(ValueError):
        read_threads(0)


def test_the_io_factor_comes_from_the_environment_and_a_bad_one_fails():
    assert threads_per_core_from_env({}) == DEFAULT_READ_THREADS_PER_CORE
    assert threads_per_core_from_env({READ_THREADS_PER_CORE_ENV: "3"}) == 3
    for bad in ("0", "-2", "four"):
        with pytest.raises(ValueError, match=READ_THREADS_PER_CORE_ENV):
            threads_per_core_from_env({READ_THREADS_PER_CORE_ENV: bad})


def test_a_workers_reader_is_sized_from_its_task_cores_and_the_env_factor(monkeypatch):
    # GIVEN a fresh worker process (no reader yet) with an I/O factor of 3 in its environment
    monkeypatch.setattr(worker_cache, "_readers", {})
    monkeypatch.setenv(READ_THREADS_PER_CORE_ENV, "3")
    # WHEN its tasks of 2 cores ask for the reader twice
    first = worker_cache.cached_image_reader(2)
    second = worker_cache.cached_image_reader(2)
    # THEN it is built once, with 2 x 3 threads
    assert first is second
    assert first.threads == 6
