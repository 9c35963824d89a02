"""In-tree PEP 517 build backend for vapoursynth-vfi.

setuptools builds the pure-Python part (the ``vsrife`` package); this module then compiles the native VapourSynth
plugin (``plugin/*.cpp``) and adds it to the wheel as ``vapoursynth/plugins/libvfi.so``, the folder from which pip's
VapourSynth autoloads plugins, and the engine's native CPU kernels (``vsrife/kernels/*.cpp``) as
``vsrife/kernels/libvfi_kernels.so`` (for an editable install: into the source tree, where vsrife is imported from).
The wheel becomes a platform wheel (``Root-Is-Purelib: false``, tag ``cp312-abi3-<platform>``) with a rewritten
RECORD. Editable wheels get the real library too, because VapourSynth only
autoloads from ``site-packages/vapoursynth/plugins`` (re-run ``pip install -e`` after changing the C++ sources; the
kernels are renamed over the old library, so running processes keep theirs).

The plugin is compiled against the running Python's headers with ``Py_LIMITED_API`` = 3.12 and is not linked to
libpython or libtorch: the host process (python or vspipe) provides the Python symbols. It registers the major and
minor of pyproject.toml's version. The compiler is ``$CXX`` (default ``c++``, this machine's toolchain);
``build.py wheel`` sets it to zig's clang for an old glibc, which makes the wheel a manylinux one.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools

PLUGIN_DIR = Path(__file__).resolve().parent
PLUGIN_ARCNAME = "vapoursynth/plugins/libvfi.so"
KERNELS_DIR = PLUGIN_DIR.parent / "vsrife" / "kernels"
KERNELS_ARCNAME = "vsrife/kernels/libvfi_kernels.so"  # where vsrife.kernels loads it from
LIMITED_API = "0x030C0000"  # Python 3.12
ABI_TAG = "cp312-abi3"


class CompileError(RuntimeError):
    pass


def _vapoursynth_include() -> str:
    try:
        import vapoursynth

        return vapoursynth.get_include()
    except Exception as exc:  # a broken VapourSynth install: fall back to the package folder
        import importlib.util

        spec = importlib.util.find_spec("vapoursynth")
        if spec is None or not spec.submodule_search_locations:
            raise CompileError(f"cannot find the VapourSynth headers (vapoursynth is not importable: {exc})") from exc
        return str(Path(next(iter(spec.submodule_search_locations))) / "include")


def _version_defines() -> list[str]:
    """The project's version (pyproject.toml, its one definition) as the plugin's major and minor: VapourSynth's
    plugin version holds no more."""
    version = tomllib.loads((PLUGIN_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise CompileError(f"pyproject.toml: version {version!r} does not start with MAJOR.MINOR")
    return [f"-DVFI_VERSION_MAJOR={match[1]}", f"-DVFI_VERSION_MINOR={match[2]}"]


def _platform_tag() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _compile(what: str, sources: list[str], flags: list[str], output: Path) -> Path:
    """Compiles C++ sources into the shared library `output`; raises CompileError with the compiler's message."""
    cxx = shlex.split(os.environ.get("CXX") or "c++")
    cmd = [
        *cxx,
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        *flags,
        *shlex.split(os.environ.get("CXXFLAGS", "")),
        *sources,
        "-o",
        str(output),
        *shlex.split(os.environ.get("LDFLAGS", "")),
    ]
    print("vapoursynth-vfi: " + shlex.join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise CompileError(f"cannot run the C++ compiler {cxx[0]!r} (set CXX to choose one): {exc}") from exc
    if proc.stdout or proc.stderr:
        print(proc.stdout + proc.stderr, file=sys.stderr)
    if proc.returncode != 0:
        raise CompileError(f"compiling the {what} failed (exit status {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return output


def compile_plugin(output: Path) -> Path:
    """Compiles plugin/*.cpp into the shared library `output`; raises CompileError with the compiler's message."""
    sources = sorted(str(p) for p in PLUGIN_DIR.glob("*.cpp"))
    if not sources:
        raise CompileError(f"no C++ sources found in {PLUGIN_DIR}")
    flags = ["-O2", f"-I{_vapoursynth_include()}", f"-I{sysconfig.get_paths()['include']}",
             f"-DPy_LIMITED_API={LIMITED_API}", *_version_defines()]
    return _compile("VapourSynth plugin", sources, flags, output)


def compile_kernels(output: Path) -> Path:
    """Compiles vsrife/kernels/*.cpp (the engine's native CPU kernels, plain C ABI) into `output`."""
    sources = sorted(str(p) for p in KERNELS_DIR.glob("*.cpp"))
    if not sources:
        raise CompileError(f"no C++ sources found in {KERNELS_DIR}")
    # no contraction into FMA: each build of the hot loops (loops.h) then rounds every operation alike
    return _compile("native kernels", sources, ["-O3", "-pthread", "-ffp-contract=off"], output)


def replace_library(built: Path, destination: Path) -> Path:
    """Puts the library `built` at `destination` by renaming a copy over it: a process that has the old library
    loaded keeps its mapping of the old file (writing into that file in place would crash it)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, built.open("rb") as source:
            shutil.copyfileobj(source, out)
        os.chmod(temporary, 0o755)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return destination


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _retagged_name(wheel_name: str, tag: str) -> str:
    # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
    parts = wheel_name[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise RuntimeError(f"unexpected wheel file name {wheel_name!r}")
    return "-".join(parts[:-3] + tag.split("-")) + ".whl"


def _add_libraries(src_wheel: Path, dest_dir: Path, libraries: dict[str, Path]) -> str:
    """Copies src_wheel into dest_dir with the libraries (arcname -> file) added, WHEEL/RECORD rewritten and the
    name retagged."""
    tag = f"{ABI_TAG}-{_platform_tag()}"
    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    with zipfile.ZipFile(src_wheel) as zin:
        for info in zin.infolist():
            entries.append((info, zin.read(info)))

    dist_info = next(
        (i.filename.split("/")[0] for i, _ in entries if i.filename.endswith(".dist-info/WHEEL")), None
    )
    if dist_info is None:
        raise RuntimeError(f"{src_wheel.name} has no .dist-info/WHEEL")
    record_name = f"{dist_info}/RECORD"

    def is_meta(name: str) -> bool:
        return name.startswith(dist_info + "/")

    files: list[tuple[str, bytes, int]] = []  # (arcname, data, unix mode)
    for info, data in entries:
        if info.filename == record_name or info.is_dir():
            continue
        if info.filename == f"{dist_info}/WHEEL":
            lines = [
                line
                for line in data.decode("utf-8").splitlines()
                if line.strip() and not line.startswith(("Root-Is-Purelib:", "Tag:"))
            ]
            lines += ["Root-Is-Purelib: false", f"Tag: {tag}"]
            data = ("\n".join(lines) + "\n").encode("utf-8")
        mode = (info.external_attr >> 16) & 0o777 or 0o644
        files.append((info.filename, data, mode))
    for arcname, library in libraries.items():
        if any(name == arcname for name, _, _ in files):
            raise RuntimeError(f"{src_wheel.name} already contains {arcname}")
        files.append((arcname, library.read_bytes(), 0o755))
    files.sort(key=lambda f: (is_meta(f[0]), f[0]))  # package files first, .dist-info last

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data, _ in files:
        writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([record_name, "", ""])

    out_name = _retagged_name(src_wheel.name, tag)
    out_path = dest_dir / out_name
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for name, data, mode in [*files, (record_name, record.getvalue().encode("utf-8"), 0o644)]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data)
    return out_name


@contextlib.contextmanager
def _no_new_build_artefacts() -> Iterator[None]:
    """Removes the build/ and *.egg-info that setuptools leaves in the source tree.

    A stale egg-info in the project root shadows the installed dist-info for any Python started there.
    """
    root = Path.cwd()
    before = {p for p in (root / "build", *root.glob("*.egg-info")) if p.exists()}
    try:
        yield
    finally:
        for path in (root / "build", *root.glob("*.egg-info")):
            if path.exists() and path not in before:
                shutil.rmtree(path, ignore_errors=True)


ConfigSettings = dict[str, Any] | None  # PEP 517's config_settings


def _build(builder: Callable[..., str], wheel_directory: str, config_settings: ConfigSettings,
           metadata_directory: str | None, editable: bool = False) -> str:
    with _no_new_build_artefacts(), tempfile.TemporaryDirectory(prefix="vfi-build-") as tmp:
        tmp_path = Path(tmp)
        # first: a compile error should be the first thing seen
        libraries = {PLUGIN_ARCNAME: compile_plugin(tmp_path / "libvfi.so")}
        kernels = compile_kernels(tmp_path / "libvfi_kernels.so")
        if editable:
            # an editable install imports vsrife from the source tree, so the kernels go there (git ignores *.so)
            replace_library(kernels, KERNELS_DIR / kernels.name)
        else:
            libraries[KERNELS_ARCNAME] = kernels
        built = tmp_path / "wheel"
        built.mkdir()
        name = builder(str(built), config_settings, metadata_directory)
        return _add_libraries(built / name, Path(wheel_directory), libraries)


def _delegated(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A setuptools hook that leaves no build artefacts behind in the source tree."""

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _no_new_build_artefacts():
            return hook(*args, **kwargs)

    return run


get_requires_for_build_wheel = _delegated(_setuptools.get_requires_for_build_wheel)
get_requires_for_build_sdist = _delegated(_setuptools.get_requires_for_build_sdist)
get_requires_for_build_editable = _delegated(_setuptools.get_requires_for_build_editable)
prepare_metadata_for_build_wheel = _delegated(_setuptools.prepare_metadata_for_build_wheel)
prepare_metadata_for_build_editable = _delegated(_setuptools.prepare_metadata_for_build_editable)


def build_wheel(wheel_directory: str, config_settings: ConfigSettings = None,
                metadata_directory: str | None = None) -> str:
    return _build(_setuptools.build_wheel, wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: ConfigSettings = None,
                   metadata_directory: str | None = None) -> str:
    return _build(_setuptools.build_editable, wheel_directory, config_settings, metadata_directory, editable=True)


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    """A file member's bytes; None for folders and links."""
    extracted = archive.extractfile(member) if member.isfile() else None
    return None if extracted is None else extracted.read()


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    """setuptools' sdist plus plugin/ (the C++ sources and this backend) and the kernels' C++ sources and header,
    which it would not include by itself."""
    with _no_new_build_artefacts():
        name = _setuptools.build_sdist(sdist_directory, config_settings)
    path = Path(sdist_directory) / name
    base = name[: -len(".tar.gz")]
    with tarfile.open(path, "r:gz") as tin:
        members = [(m, _read_member(tin, m)) for m in tin.getmembers()]
    present = {m.name for m, _ in members}
    extra = sorted(
        p for p in PLUGIN_DIR.iterdir() if p.is_file() and p.suffix in (".cpp", ".h", ".hpp", ".py")
    ) + sorted(p for p in KERNELS_DIR.iterdir() if p.suffix in (".cpp", ".h"))
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tout:
        for member, data in members:
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
        for p in extra:
            arcname = f"{base}/{p.relative_to(PLUGIN_DIR.parent).as_posix()}"
            if arcname in present:
                continue
            info = tarfile.TarInfo(arcname)
            data = p.read_bytes()
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(p.stat().st_mtime)
            tout.addfile(info, io.BytesIO(data))
    return name
