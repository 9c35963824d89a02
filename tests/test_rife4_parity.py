"""Every RIFE 4.x model name against the published architecture of ``vsrife==5.7.0``, on seeded random weights.

The real weight files are release assets this machine cannot reach. What can be proven without them, for each of
the 36 names: our net has exactly the key names and shapes of the published module (so a real file loads
strictly), and with the same weights and the same frames it returns the same frame at t = 0.25, 0.5 and 0.75, scale
0.5, 1 and 2, with ensemble where the published code defines it. The published modules come from the wheel,
imported under another package name (testkit/reference.py).

"The same frame" is measured against the exact answer, the published module run in float64: our float32 output (as
the filter runs it: channels-last, native glue) may be off by at most ROUNDING_MARGIN times the published module's
own float32 error. Seeded random weights amplify rounding, and by how much depends on the CPU (published 4.6: 1.4e-6
on an AMD EPYC with AVX2, 3.0e-4 on an Intel Xeon with AMX), so a fixed epsilon holds on one CPU only.

The frames are real (bikes.mp4 frames 0 and 2, stretched slightly past [0, 1] as converted YUV can be). Our
transposed convolutions run as a 3x3 convolution and a pixel shuffle (layers.Upsample2x, the same arithmetic in
another summation order).
"""

from __future__ import annotations

import ast
import copy
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from conftest import decode_rgb
from testkit import reference
from vsrife.models import ARCHITECTURES, build_model, skeleton
from vsrife.registry import FAMILIES, MODELS, RELEASE_URL, UrlSource

RIFE4_NAMES = [name for name, entry in MODELS.items() if entry.method == "rife" and name.startswith("4.")]
# Our float32 error may be this many times the published module's (both against its float64 run), plus a few units
# in the last place of values near 1. Measured on an AMD EPYC (Zen 3, AVX2), all 36 names: at most 0.82 times, and 0.67
# with oneDNN, ATen and the native kernels capped at SSE41, default and generic.
ROUNDING_MARGIN = 8.0
ROUNDING_FLOOR = 2.0**-20
TIMESTEPS = (0.25, 0.5, 0.75)
SCALES = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def frames(bikes_path: Path) -> Tensor:
    """Frames 0 and 2 of bikes.mp4 at 640x272 (2 x 3 x 272 x 640), mapped from [0, 1] to [-0.05, 1.05]: the
    published code clamps the frames for the flow but not for every encoder."""
    rgb = decode_rgb(bikes_path, 3, 640, 272)[0::2]
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous() * 1.1 - 0.05


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


@functools.cache
def _published(name: str) -> reference.PublishedRIFE4:
    return reference.published_rife4(name)


@functools.cache
def _published_init() -> ast.Module:
    """The published package's __init__.py, which names the models and sets their padding."""
    return ast.parse((Path(_published("4.0").module.__file__ or "").parent / "__init__.py").read_text())


def _published_names() -> list[str]:
    for node in ast.walk(_published_init()):
        if (isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple))
                and any(isinstance(t, ast.Name) and t.id == "models" for t in node.targets)):
            return [ast.literal_eval(item) for item in node.value.elts]
    raise AssertionError("the published __init__.py names no models")


def _published_padding(name: str) -> int:
    """The `modulo` that the published `match model:` case of `name` sets (32 where it sets none)."""
    for node in ast.walk(_published_init()):
        if isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
            if ast.literal_eval(node.pattern.value) != name:
                continue
            for statement in node.body:
                if isinstance(statement, ast.Assign) and getattr(statement.targets[0], "id", "") == "modulo":
                    return int(ast.literal_eval(statement.value))
            return 32
    raise AssertionError(f"the published __init__.py has no case for {name}")


def _seeded_published_weights(name: str) -> dict[str, Tensor]:
    torch.manual_seed(0)
    return _published(name).net().state_dict()


def test_every_published_name_is_a_registry_row() -> None:
    assert _published_names() == RIFE4_NAMES and len(RIFE4_NAMES) == 36


@pytest.mark.parametrize("name", RIFE4_NAMES)
def test_registry_row_matches_the_published_code(name: str) -> None:
    entry = MODELS[name]
    net = skeleton(entry.architecture)
    assert entry.family in FAMILIES
    # padding: our net's size multiple, a multiple of the published one (4.0/4.1 double it for the large-motion
    # retry, which runs every block at twice the published scale)
    assert entry.padding == net.alignment(1.0) and entry.padding % _published_padding(name) == 0
    try:
        _published(name).net(1.0, True)
        published_ensemble = True
    except ValueError:
        published_ensemble = False
    assert entry.ensemble == published_ensemble == net.supports_ensemble
    if name != "4.0":  # 4.0's file comes from the vsrife 2.0.0 wheel, pinned
        (weight,) = entry.files
        assert weight.sources == (UrlSource(f"{RELEASE_URL}flownet_v{name}.pkl"),) and not weight.pinned


@pytest.mark.parametrize("name", RIFE4_NAMES)
def test_state_dict_has_the_published_keys_and_shapes(name: str) -> None:
    with torch.device("meta"):
        published = _published(name).net()
    ours = skeleton(MODELS[name].architecture)
    shapes = {key: tuple(value.shape) for key, value in ours.state_dict().items()}
    assert shapes == {key: tuple(value.shape) for key, value in published.state_dict().items()}


@pytest.mark.parametrize("name", RIFE4_NAMES)
def test_output_equals_the_published_module(frames: Tensor, name: str) -> None:
    entry = MODELS[name]
    state = _seeded_published_weights(name)
    # the published file layout: DataParallel's "module." prefix, as the release assets store it
    ours = build_model(entry.architecture, {"flownet": {"module." + key: value for key, value in state.items()}})
    ours.use_channels_last()  # as the engine runs it on the CPU
    our_errors: dict[tuple[float, bool, float], float] = {}
    published_errors: dict[tuple[float, bool, float], float] = {}
    for scale in SCALES:
        height = max(ours.alignment(scale), 32)  # the smallest size the published code runs at this scale
        top, left = (frames.shape[2] - height) // 2, (frames.shape[3] - 2 * height) // 2
        img0, img1 = frames[:, :, top:top + height, left:left + 2 * height].split(1)
        for ensemble in (False, True) if entry.ensemble else (False,):
            published = _published(name).net(scale, ensemble)
            published.load_state_dict(state, strict=True)
            exact = copy.deepcopy(published).double()
            for t in TIMESTEPS:
                out = ours(img0, img1, t, scale, ensemble)
                expected = _published(name).run(exact, img0.double(), img1.double(), t)
                rounded = _published(name).run(published, img0, img1, t)
                assert out.shape == img0.shape and out.dtype == rounded.dtype == torch.float32
                our_errors[(scale, ensemble, t)] = (out.double() - expected).abs().max().item()
                published_errors[(scale, ensemble, t)] = (rounded.double() - expected).abs().max().item()
    worst = max(our_errors, key=our_errors.__getitem__)
    bound = ROUNDING_MARGIN * max(published_errors.values()) + ROUNDING_FLOOR
    print(f"{name}: ours {our_errors[worst]:.3g}, published {max(published_errors.values()):.3g} from float64 "
          f"(ratio {our_errors[worst] / max(published_errors.values()):.2f})")
    assert our_errors[worst] <= bound, (f"{name}: {our_errors[worst]:.3g} from the float64 run at {worst} (published "
                                        f"float32: {max(published_errors.values()):.3g}, bound {bound:.3g})")


@pytest.mark.parametrize("architecture", ["rife-4.7", "rife-4.13", "rife-4.25"])
def test_features_computed_once_give_the_same_frame(architecture: str) -> None:
    torch.manual_seed(2)
    net = ARCHITECTURES[architecture]().eval()
    img0, img1 = torch.rand(2, 1, 3, 64, 128)
    features = (net.encode_frame(img0), net.encode_frame(img1))
    assert all(f is not None and f.shape[2:] == img0.shape[2:] for f in features)
    assert torch.equal(net(img0, img1, 0.5, 1.0, False, features), net(img0, img1, 0.5, 1.0, False))


def test_nets_without_an_encoder_have_no_features() -> None:
    assert skeleton("rife-4.0").encode_frame(torch.zeros(1, 3, 8, 8, device="meta")) is None
    assert skeleton("rife-4.6").encode_frame(torch.zeros(1, 3, 8, 8, device="meta")) is None
