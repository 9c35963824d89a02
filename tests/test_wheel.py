"""The release wheel as a user installs it: `python3 build.py wheel`, then a fresh virtual environment, no compiler.

Fresh: the virtual environment (`python -m venv` from the dev install's interpreter), our wheel with the `cli` extra
and every dependency but torch and numpy, installed by pip the normal way (from the package index, through pip's
cache), vspipe's configuration (`vapoursynth config` into a temporary XDG_CONFIG_HOME), the working folder (outside
the repository, so that its tree is not on sys.path) and the environment: PATH holds the venv's bin/ alone, so no
cc, c++, gcc or clang is reachable, CC=false and CXX=false, no PYTHONPATH.
Shared with the dev install: torch and numpy with the distributions they need (the CUDA build, 5 GB: installing it
would take minutes and gigabytes on every run, and it is a dependency, not what is tested), through a .pth file that
names a folder of links to those distributions alone; and the cache of model weights (VSRIFE_MODEL_DIR).
The frames are compared with the dev install's (the rest of the suite checks those) on the same clip.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT, VSPIPE, vsrife
from vsrife.weights import cache_dir

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++", "zig")
PLUGIN_AND_KERNELS = ("vapoursynth/plugins/libvfi.so", "vsrife/kernels/libvfi_kernels.so")  # in the wheel
SHARED = ("torch", "numpy")  # from the dev install, with what they require (see the docstring)
SCRIPT = """\
import sys
import vapoursynth as vs
import vsrife.kernels
core = vs.core
print("plugin:", core.vfi.plugin_path, file=sys.stderr)
print("kernels:", vsrife.kernels.LIBRARY, vsrife.kernels.native_isa(), file=sys.stderr)
clip = core.bs.VideoSource({source!r})[:3]
core.vfi.RIFE(clip, multi=2).set_output()
"""


@dataclass(frozen=True)
class Release:
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class FreshInstall:
    root: Path         # the virtual environment
    site: Path         # its site-packages
    work: Path         # the working folder of its commands
    env: dict[str, str]

    def run(self, *args: str | Path, config: bool = True) -> subprocess.CompletedProcess[str]:
        """A command of the fresh install, run from its working folder; `config`: with vspipe's configuration."""
        return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, cwd=self.work,
                              env=self.environment(config), timeout=600, check=False)

    def environment(self, config: bool = True) -> dict[str, str]:
        return {**self.env, "XDG_CONFIG_HOME": str(self.work / "config")} if config else self.env

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    dist = tmp_path_factory.mktemp("dist")
    checked(subprocess.run([sys.executable, str(ROOT / "build.py"), "wheel", str(dist)], capture_output=True,
                           text=True, timeout=1200, check=False))
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return Release(sdist, wheel)


def shared_distributions(names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The dev install's distributions of `names` and of everything they require on this machine."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [canonicalize_name(name) for name in names]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = importlib.metadata.distribution(name)
        for line in found[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return list(found.values())


def link_distributions(distributions: list[importlib.metadata.Distribution], folder: Path) -> None:
    """Links the top-level files and folders of each distribution (its package, its .dist-info) into `folder`."""
    folder.mkdir()
    for distribution in distributions:
        site = Path(str(distribution.locate_file("")))
        tops = {path.parts[0] for path in distribution.files or [] if path.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            if not (folder / top).exists() and (site / top).exists():
                (folder / top).symlink_to(site / top)


@pytest.fixture(scope="module")
def fresh(release: Release, tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    base = tmp_path_factory.mktemp("fresh")
    root, work = base / "venv", base / "work"
    work.mkdir()
    checked(subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, check=False))
    (site,) = root.glob("lib/python3.*/site-packages")
    link_distributions(shared_distributions(SHARED), base / "shared")
    (site / "vfi-test-shared.pth").write_text(f"{base / 'shared'}\n")
    hidden = {"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CC", "CXX", "XDG_CONFIG_HOME"}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env.update(PATH=str(root / "bin"), CC="false", CXX="false", VSRIFE_MODEL_DIR=str(cache_dir()))
    install = FreshInstall(root, site, work, env)
    checked(install.run(install.bin("python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"{release.wheel}[cli]", config=False))
    checked(install.run(install.bin("vapoursynth"), "config"))
    return install


def build_script_glibc() -> str:
    """build.py's GLIBC, the glibc the wheel is linked against (build.py is loaded from its file: the name `build`
    is also PyPA's build, which build.py installs)."""
    spec = importlib.util.spec_from_file_location("vfi_build_script", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GLIBC)


def test_release_files(release: Release) -> None:
    """The wheel: manylinux for build.py's glibc, abi3 for CPython >= 3.12 (the plugin calls Python through the
    limited API alone), the plugin where VapourSynth autoloads it and the kernels in the package; the sdist (from
    which the wheel was built) has every C++ source."""
    policy = f"manylinux_{build_script_glibc().replace('.', '_')}_x86_64"
    platforms = release.wheel.name.removesuffix(".whl").split("-")[-1].split(".")
    assert release.wheel.name.startswith(f"vapoursynth_vfi-{VERSION}-cp312-abi3-") and policy in platforms, \
        release.wheel.name
    with zipfile.ZipFile(release.wheel) as wheel:
        names = set(wheel.namelist())
    assert {*PLUGIN_AND_KERNELS, "vsrife/engine.py"} <= names
    assert not any(".libs/" in name for name in names)  # auditwheel grafted no library in
    with tarfile.open(release.sdist) as sdist:
        members = {Path(name).relative_to(Path(name).parts[0]).as_posix() for name in sdist.getnames()
                   if len(Path(name).parts) > 1}
    sources = {path.relative_to(ROOT).as_posix() for pattern in ("plugin/*.cpp", "plugin/*.h", "vsrife/kernels/*.cpp",
                                                                  "vsrife/kernels/*.h") for path in ROOT.glob(pattern)}
    assert sources | {"pyproject.toml", "plugin/build_backend.py"} <= members


def avx_outside_dispatch(library: bytes, folder: Path) -> tuple[set[str], dict[str, int]]:
    """The functions of a library that use AVX (VEX or EVEX instructions, whose mnemonics start with v, or ymm or
    zmm registers) outside the kernels' AVX2 and AVX-512 builds, which run only where the CPU has them; and the
    count of such instructions inside each of those builds."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    path = folder / "library.so"
    path.write_bytes(library)
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", str(path)], capture_output=True, text=True,
                          check=True).stdout
    function, inside, outside = "", {"avx2": 0, "avx512f": 0}, set()
    for line in text.splitlines():
        header = re.match(r"[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header[1]
            continue
        instruction = line.split("\t")[1:2]
        if not instruction or not (instruction[0].startswith("v") or re.search(r"%[yz]mm", line)):
            continue
        isa = next((isa for isa in inside if f"{isa}::" in function), None)
        if isa is None:
            outside.add(function)
        else:
            inside[isa] += 1
    return outside, inside


def test_libraries_run_on_every_x86_64_cpu(release: Release, tmp_path: Path) -> None:
    """The plugin and the kernels use baseline x86-64 alone, but for the kernels' AVX2 and AVX-512 builds of their
    hot loops, which they choose at run time."""
    with zipfile.ZipFile(release.wheel) as wheel:
        plugin, kernels = (wheel.read(name) for name in PLUGIN_AND_KERNELS)
    outside, _ = avx_outside_dispatch(plugin, tmp_path)
    assert not outside, f"AVX instructions in the plugin: {sorted(outside)[:10]}"
    outside, inside = avx_outside_dispatch(kernels, tmp_path)
    assert not outside, f"AVX instructions outside the run-time-chosen builds: {sorted(outside)[:10]}"
    assert inside["avx2"] > 0 and inside["avx512f"] > 0  # the disassembly named the functions (symbols were kept)


PROBE = """\
import json, os, shutil, sys
import vapoursynth as vs
import vsrife, vsrife.kernels
plugin = vs.core.vfi
print(json.dumps({
    "vsrife": vsrife.__file__, "version": vsrife.__version__, "kernels": str(vsrife.kernels.LIBRARY),
    "isa": vsrife.kernels.native_isa(), "plugin": plugin.plugin_path, "plugin_version": list(plugin.version),
    "path": [os.path.realpath(entry) for entry in sys.path], "cc": os.environ.get("CC"), "cxx": os.environ.get("CXX"),
    "compilers": {name: shutil.which(name) for name in sys.argv[1:]},
}))
"""


def test_fresh_install_runs_from_the_wheel(fresh: FreshInstall) -> None:
    """No compiler is reachable; vsrife, its kernels and the autoloaded plugin come from the venv's site-packages,
    the repository is not on sys.path, torch is the shared one (pip installed no other); one version everywhere."""
    facts = json.loads(checked(fresh.run(fresh.bin("python"), "-c", PROBE, *COMPILERS)).stdout)
    assert facts["compilers"] == dict.fromkeys(COMPILERS) and facts["cc"] == facts["cxx"] == "false"
    site = fresh.site.resolve()
    assert Path(facts["vsrife"]).resolve().is_relative_to(site / "vsrife")
    assert Path(facts["kernels"]).resolve() == site / "vsrife" / "kernels" / "libvfi_kernels.so"
    assert Path(facts["plugin"]).resolve() == site / "vapoursynth" / "plugins" / "libvfi.so"
    assert facts["isa"] is not None  # the native kernels loaded
    assert not any(Path(entry).is_relative_to(ROOT) for entry in facts["path"]), facts["path"]
    assert not (fresh.site / "torch").exists() and not (fresh.site / "numpy").exists()
    major, minor = (int(part) for part in VERSION.split(".")[:2])
    assert facts["version"] == VERSION and facts["plugin_version"] == [major, minor]
    shown = checked(fresh.run(fresh.bin("python"), "-m", "vsrife", "--version")).stdout.strip()
    assert shown == f"python -m vsrife {VERSION}"


def frames_of_raw(data: bytes, width: int, height: int) -> np.ndarray:
    """Raw YUV420P8 frames as vspipe writes them, one row of samples (all planes) per frame."""
    size = width * height * 3 // 2
    assert len(data) % size == 0
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, size)


def test_vspipe_autoloads_the_wheels_plugin(fresh: FreshInstall, bikes_path: Path) -> None:
    """core.vfi.RIFE under the fresh install's vspipe: its plugin and kernels, the frames of the dev install's."""
    script = fresh.work / "double.vpy"
    script.write_text(SCRIPT.format(source=str(bikes_path)))
    piped = subprocess.run([str(fresh.bin("vspipe")), str(script), "-"], capture_output=True, timeout=600,
                           cwd=fresh.work, env=fresh.environment(), check=False)
    log = piped.stderr.decode(errors="replace")
    assert piped.returncode == 0, log
    said = dict(line.split(": ", 1) for line in log.splitlines() if line.startswith(("plugin: ", "kernels: ")))
    site = fresh.site.resolve()
    assert Path(said["plugin"]).resolve() == site / "vapoursynth" / "plugins" / "libvfi.so"
    kernels, isa = said["kernels"].rsplit(" ", 1)
    assert Path(kernels).resolve() == site / "vsrife" / "kernels" / "libvfi_kernels.so" and isa != "None"
    ours = piped.stdout
    dev = subprocess.run([str(VSPIPE), str(script), "-"], capture_output=True, timeout=600, check=True).stdout
    ours_frames, dev_frames = frames_of_raw(ours, 640, 272), frames_of_raw(dev, 640, 272)
    assert ours_frames.shape == dev_frames.shape == (6, 640 * 272 * 3 // 2)
    difference = np.abs(ours_frames.astype(np.int16) - dev_frames.astype(np.int16))
    assert difference.max() <= 1, f"{np.count_nonzero(difference)} samples differ, by up to {difference.max()}"


def test_cli_interpolates_from_the_wheel(fresh: FreshInstall, bikes_path: Path, tmp_path: Path) -> None:
    """python -m vsrife interpolate in the fresh install (its BestSource, its ffmpeg from imageio-ffmpeg): the frames
    of the dev install's command line, lossless."""
    options = ["--end", "2", "--codec", "ffv1", "--lossless", "-q"]
    ours, dev = fresh.work / "cli.mkv", tmp_path / "dev.mkv"
    checked(fresh.run(fresh.bin("python"), "-m", "vsrife", "interpolate", bikes_path, "-o", ours, *options))
    checked(vsrife("interpolate", bikes_path, "-o", dev, *options))
    ours_frames, dev_frames = samples_of(ours), samples_of(dev)
    assert ours_frames.shape == dev_frames.shape and len(ours_frames) == 6
    difference = np.abs(ours_frames.astype(np.int16) - dev_frames.astype(np.int16))
    assert difference.max() <= 1, f"{np.count_nonzero(difference)} samples differ, by up to {difference.max()}"


def samples_of(path: Path) -> np.ndarray:
    """A video's frames as decoded by BestSource, one row of samples (all planes) per frame."""
    clip = vs.core.bs.VideoSource(str(path))
    return np.stack([np.concatenate([np.asarray(frame[p]).ravel() for p in range(frame.format.num_planes)])
                     for frame in clip.frames()])
