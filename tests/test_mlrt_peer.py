"""The CPU peer benchmark compares like with like: our RIFE 4.0 exported in vs-mlrt's input layout and run through
vs-mlrt's OpenVINO plugin (core.ov, fp32) gives our frames (testkit/mlrt.py, benchmarks/mlrt_peer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import clip_from_frames, psnr
from testkit import mlrt

# Measured on an AMD EPYC (AVX512-BF16): max 3.2e-6, PSNR >= 137 dB over these frames. The margin leaves room for
# other CPUs' kernels summing in other orders; a wrong plane, weight or grid convention costs far more than 1e-4.
MAX_ABS_DIFF = 1e-4


def test_ov_fp32_gives_our_fp32_frames(bikes_rgb40: np.ndarray, tmp_path: Path) -> None:
    reason = mlrt.peer_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # 128x112: both sides pad to 128x128 by repeating the last row (ours to multiples of 64, the peer's to 32), so
    # both nets see identical input and the peer's pad and crop are exercised too
    crop = np.ascontiguousarray(bikes_rgb40[:5, 100:212, 200:328])
    network = mlrt.export_onnx(tmp_path / "rife40_128x128.onnx", *mlrt.padded_size(128, 112))
    ours = mlrt.ours_midpoints(clip_from_frames(crop), "fp32")
    peer = mlrt.ov_midpoints(clip_from_frames(crop), network, "fp32")
    assert (peer.width, peer.height, peer.num_frames) == (ours.width, ours.height, ours.num_frames) == (128, 112, 5)
    for k in range(4):
        a, b = mlrt.rgb_of(ours.get_frame(k)), mlrt.rgb_of(peer.get_frame(k))
        assert np.abs(a - b).max() < MAX_ABS_DIFF, (k, float(np.abs(a - b).max()), psnr(a, b))
        # a real interpolation, not a copy of a neighbour: the two neighbours differ from it
        assert psnr(a, crop[k]) < 60 and psnr(a, crop[k + 1]) < 60
