"""What a clean image weighs: a synthetic 12 MP photo-like upload through the ingest's normalize_image.

`fruits cost --image-kib` and `--clean-image-kib` default to these figures (docs/operations.md).
Run: .venv/bin/python -m benchmarks.clean_image_size

The picture: smooth colour fields (light, objects) + mid-frequency texture (surfaces)
+ sensor noise, sized 4000 x 3000 and saved as a camera would (JPEG quality 92), so
the upload weighs what a phone's 12 MP JPEG does (3-4 MiB); the ingest then shrinks it
to CLEAN_IMAGE_MAX_SIDE_PX on the long side and re-encodes it.
"""

from __future__ import annotations

import io
import statistics

import numpy as np
from fruits_ingest.imaging import normalize_image
from PIL import Image

from fruits_core.contracts import CLEAN_IMAGE_MAX_SIDE_PX, MAX_IMAGE_PIXELS

WIDTH, HEIGHT = 4000, 3000
CAMERA_QUALITY = 92
SEEDS = (0, 1, 2)


def _field(rng: np.random.Generator, cells: tuple[int, int], amplitude: float) -> np.ndarray:
    small = rng.uniform(-amplitude, amplitude, size=(cells[1], cells[0], 3)).astype(np.float32)
    layers = [
        np.asarray(Image.fromarray(small[..., c]).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
        for c in range(3)
    ]
    return np.stack(layers, axis=-1)


def photo_like(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = 128.0 + _field(rng, (6, 5), 90.0) + _field(rng, (160, 120), 35.0) + _field(rng, (800, 600), 18.0)
    pixels += rng.normal(0.0, 5.0, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=CAMERA_QUALITY)
    return out.getvalue()


def main() -> None:
    uploads, cleans = [], []
    for seed in SEEDS:
        upload = photo_like(seed)
        clean = normalize_image(upload, MAX_IMAGE_PIXELS)
        uploads.append(len(upload) / 1024)
        cleans.append(len(clean.jpeg) / 1024)
        print(
            f"seed {seed}: upload {WIDTH}x{HEIGHT} {len(upload) / 1024:,.0f} KiB -> clean "
            f"{clean.width}x{clean.height} {len(clean.jpeg) / 1024:,.0f} KiB"
        )
    print(
        f"median: upload {statistics.median(uploads):,.0f} KiB, clean (long side "
        f"{CLEAN_IMAGE_MAX_SIDE_PX} px) {statistics.median(cleans):,.0f} KiB"
    )


if __name__ == "__main__":
    main()
