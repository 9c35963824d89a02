"""The native glue kernels (vsrife/kernels/glue.cpp) against their plain-PyTorch definition (kernels/reference.py),
in each build of their hot loops (generic, AVX2, AVX-512F) that this CPU runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from vsrife import kernels
from vsrife.errors import VfiError
from vsrife.kernels import Constant, Scaled, Warped, reference

# float32 sums in another order, and the warp's sample position computed directly where the reference goes through
# grid_sample's normalised grid (~1e-5 px apart at this size, times the random features' steps of up to ~5
# between neighbouring pixels); relative to values of at least 1
FP32_TOLERANCE = 1e-4


def _max_error(a: Tensor, b: Tensor) -> float:
    """The largest difference, relative where |b| > 1."""
    return float(((a.float() - b.float()).abs() / b.float().abs().clamp(min=1.0)).max())


@pytest.fixture(scope="module")
def state() -> dict[str, Tensor]:
    torch.manual_seed(0)
    n, h, w = 2, 48, 80
    flow = torch.randn(n, 4, h, w) * 6
    flow[0, 0, :4, :4] = 500.0  # far outside the frame: the border repeats
    return {"img0": torch.rand(n, 3, h, w), "img1": torch.rand(n, 3, h, w), "flow": flow,
            "mask": torch.randn(n, 1, h, w), "features": torch.randn(n, 4, h, w), "t": torch.tensor([0.25, 0.5])}


@pytest.fixture(params=kernels.ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each build of the hot loops that this CPU runs, up to the one VSRIFE_KERNELS allowed when the tests began."""
    wanted: str = request.param
    allowed = kernels._requested_isa()
    if allowed is None or kernels.ISAS.index(wanted) > kernels.ISAS.index(allowed):
        pytest.skip(f"VSRIFE_KERNELS={os.environ.get(kernels.SETTING)} rules out {wanted}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(kernels.SETTING, wanted)
        kernels._library.cache_clear()
        try:
            if kernels.native_isa() != wanted:
                pytest.skip(f"this CPU cannot run the {wanted} build")
            yield wanted
        finally:
            patch.undo()
            kernels._library.cache_clear()


def test_the_native_kernels_are_built() -> None:
    """pip builds them with the plugin; without them every call would quietly take the slower reference."""
    assert kernels.native_available(), f"{kernels.LIBRARY} is missing: reinstall with pip install -e ."


@pytest.mark.parametrize("factor", [16.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_block_input_matches_the_reference(state: dict[str, Tensor], factor: float, dtype: torch.dtype,
                                           channels_last: bool, isa: str) -> None:
    flow = state["flow"]
    parts: list[kernels.Part] = [Warped(state["img0"], 0), Warped(state["img1"], 2), Warped(state["features"], 0),
                                 Constant(state["t"]), state["mask"], Scaled(flow, 1.0 / factor)]
    native = kernels.block_input(parts, flow, factor, dtype, channels_last)
    expected = reference.block_input(parts, flow, factor, dtype, channels_last)
    assert native.shape == expected.shape == (2, 16, round(48 / factor), round(80 / factor))
    assert native.dtype == dtype and native.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if dtype == torch.float32:
        assert _max_error(native, expected) < FP32_TOLERANCE
    else:  # both round float32 sums that differ in the last bits to bf16: at most one bf16 step apart
        step = expected.float().abs().clamp(min=1e-2) * 2**-7
        assert bool(((native.float() - expected.float()).abs() <= step).all())


def test_block_input_without_flow_resizes_plain_parts(state: dict[str, Tensor], isa: str) -> None:
    parts: list[kernels.Part] = [state["img0"], state["img1"], Constant(state["t"])]
    native = kernels.block_input(parts, None, 4.0, torch.float32, False)
    assert _max_error(native, reference.block_input(parts, None, 4.0, torch.float32, False)) < FP32_TOLERANCE


@pytest.mark.parametrize("factor", [16.0, 4.0, 2.0, 1.0, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("shuffles", [0, 1, 2])
def test_block_output_matches_the_reference(state: dict[str, Tensor], factor: float, dtype: torch.dtype,
                                            with_state: bool, shuffles: int, isa: str) -> None:
    """The head is read in place as pixel-shuffled `shuffles` times (RIFE 4.0's head: once; 4.5+: twice)."""
    torch.manual_seed(1)
    size = 2**shuffles
    if any((side / factor / size) % 1 for side in (48, 80)):
        pytest.skip("the head would not cover the frame in whole pixels")
    head = torch.randn(2, 9 * size**2, round(48 / factor / size), round(80 / factor / size)).to(dtype)
    head = head.contiguous(memory_format=torch.channels_last)
    flow, mask = (state["flow"], state["mask"]) if with_state else (None, None)
    native = kernels.block_output(head, factor, 2 * factor, flow, mask, 3, shuffles)
    expected = reference.block_output(head, factor, 2 * factor, flow, mask, 3, shuffles)
    for got, want in zip(native, expected, strict=True):
        assert got is not None and want is not None
        assert got.shape == want.shape and got.dtype == torch.float32
        assert _max_error(got, want) < FP32_TOLERANCE


def test_warp_blend_matches_the_reference(state: dict[str, Tensor], isa: str) -> None:
    native = kernels.warp_blend(state["img0"], state["img1"], state["flow"], state["mask"])
    expected = reference.warp_blend(state["img0"], state["img1"], state["flow"], state["mask"])
    assert native.dtype == torch.float32
    assert _max_error(native, expected) < FP32_TOLERANCE


def test_warp_keeps_the_dtype_and_matches_the_reference(state: dict[str, Tensor], isa: str) -> None:
    flow = state["flow"][:, :2]
    assert _max_error(kernels.warp(state["img0"], flow), reference.warp(state["img0"], flow)) < FP32_TOLERANCE
    half = kernels.warp(state["img0"].to(torch.bfloat16), flow.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_a_non_finite_flow_samples_inside_the_frame(state: dict[str, Tensor], isa: str) -> None:
    """NaN and infinite positions must not read outside the image (the native code indexes memory directly)."""
    flow = state["flow"].clone()
    flow[:, :, 5, 5] = float("nan")
    flow[:, :, 6, 6] = float("inf")
    flow[:, :, 7, 7] = -float("inf")
    out = kernels.warp_blend(state["img0"], state["img1"], flow, state["mask"])
    finite = out[:, :, [6, 7], [6, 7]]
    assert bool(torch.isfinite(finite).all()) and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0


def test_gradients_take_the_reference(state: dict[str, Tensor]) -> None:
    """Training needs autograd, which only the reference has."""
    image = state["img0"].clone().requires_grad_(True)
    kernels.warp_blend(image, state["img1"], state["flow"], state["mask"]).sum().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_the_environment_switch_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSRIFE_KERNELS", "reference")
    kernels._library.cache_clear()
    try:
        assert not kernels.native_available()
    finally:
        monkeypatch.delenv("VSRIFE_KERNELS")
        kernels._library.cache_clear()
    assert kernels.native_available()


def _every_kernel(state: dict[str, Tensor]) -> list[Tensor]:
    """Every native kernel's outputs on the state: block inputs (downsized, same size, upsized; fp32 and bf16),
    a block output with its peaks, and the final warp and blend."""
    flow = state["flow"]
    outputs = []
    for factor in (4.0, 1.0, 0.5):
        parts: list[kernels.Part] = [Warped(state["img0"], 0), Warped(state["img1"], 2), Warped(state["features"], 0),
                                     Constant(state["t"]), state["mask"], Scaled(flow, 1.0 / factor)]
        outputs += [kernels.block_input(parts, flow, factor, dtype, True) for dtype in (torch.float32, torch.bfloat16)]
    torch.manual_seed(3)
    head = torch.randn(2, 36, 24, 40).contiguous(memory_format=torch.channels_last)
    outputs += [t for t in kernels.block_output(head, 1.0, 2.0, flow, state["mask"], 3, 1) if t is not None]
    outputs.append(kernels.warp_blend(state["img0"], state["img1"], flow, state["mask"]))
    return outputs


def test_every_build_gives_the_same_bits(state: dict[str, Tensor], monkeypatch: pytest.MonkeyPatch) -> None:
    """The builds differ in vector width only: compiled without FMA contraction, each rounds every operation of every
    element alike, so they agree bit for bit (on one machine: std::exp comes from the C library)."""
    allowed = kernels._requested_isa()
    results = {}
    try:
        for isa in kernels.ISAS[: 0 if allowed is None else kernels.ISAS.index(allowed) + 1]:
            monkeypatch.setenv(kernels.SETTING, isa)
            kernels._library.cache_clear()
            if kernels.native_isa() == isa:
                results[isa] = _every_kernel(state)
    finally:
        monkeypatch.undo()
        kernels._library.cache_clear()
    if len(results) < 2:
        pytest.skip("this CPU runs only the generic build")
    first, *others = results.values()
    for isa, outputs in zip(list(results)[1:], others, strict=True):
        for index, (a, b) in enumerate(zip(first, outputs, strict=True)):
            assert torch.equal(a, b), f"output {index}: generic and {isa} differ by {(a - b).abs().max()}"


def test_the_setting_caps_the_build_when_the_library_loads() -> None:
    code = "from vsrife import kernels; print(kernels.native_isa())"
    env = {key: value for key, value in os.environ.items() if key != kernels.SETTING}
    best = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert best.stdout.strip() in kernels.ISAS
    for setting in ("generic", "GENERIC", " avx2 ", "avx512f"):
        capped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**env, kernels.SETTING: setting})
        chosen = capped.stdout.strip()
        # the cap, or the best build below it where the CPU lacks the cap's instructions
        expected = min(kernels.ISAS.index(setting.strip().lower()), kernels.ISAS.index(best.stdout.strip()))
        assert chosen == kernels.ISAS[expected], (setting, chosen)
    assert issubclass(kernels.KernelsError, VfiError)  # the command line reports it as one line
    wrong = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, kernels.SETTING: "sse9"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1] == (
        "vsrife.kernels.KernelsError: VSRIFE_KERNELS=sse9: choose native (the default), reference, generic, avx2, "
        "avx512f")


REBUILD_LOOP = """
import sys
from pathlib import Path
import torch
from vsrife import kernels
assert kernels.native_available()
torch.manual_seed(0)
img0, img1, mask = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96), torch.randn(1, 1, 64, 96)
flow = torch.randn(1, 4, 64, 96) * 4
expected = kernels.warp_blend(img0, img1, flow, mask)
print("ready", flush=True)
calls = 0
while not Path(sys.argv[1]).exists():
    assert torch.equal(kernels.warp_blend(img0, img1, flow, mask), expected)
    calls += 1
print(calls)
"""


def test_a_process_using_the_kernels_survives_a_rebuild(tmp_path: Path) -> None:
    """The editable build (what `pip install -e .` runs) replaces the library beside the kernels' sources while a
    process calls them in a loop: the file is renamed over, never written into, so the process keeps its copy."""
    stop = tmp_path / "stop"
    loop = subprocess.Popen([sys.executable, "-c", REBUILD_LOOP, str(stop)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None and loop.stdout.readline().strip() == "ready"
        before = kernels.LIBRARY.stat()
        root = Path(__file__).resolve().parents[1]
        build = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'plugin'); import build_backend; "
                                "print(build_backend.build_editable(sys.argv[1]))", str(tmp_path)],
                               cwd=root, capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stderr
        after = kernels.LIBRARY.stat()
        assert (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns), "nothing was rebuilt"
        assert not [p.name for p in kernels.LIBRARY.parent.iterdir() if p.name.startswith(".")]
        stop.touch()
        calls, errors = loop.communicate(timeout=120)
    finally:
        loop.kill()
    assert loop.returncode == 0, f"exit status {loop.returncode}: {errors}"
    assert int(calls) > 0
