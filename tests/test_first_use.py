"""Weights without a pinned hash (the vs-rife release assets of RIFE 4.1-4.26): trust on first use, whole path.

A random-weight flownet_v4.25.pkl in the published layout (the published module's keys, DataParallel's "module."
prefix) is served over HTTP from 127.0.0.1; the registry row of 4.25 is used as it is, its release URL pointed at
that server. Downloaded, checked to be 4.25's weights, recorded; reloaded against the record; tampered with in the
cache and at the source: reported and refused, never loaded. Then core.vfi.RIFE(model="4.25") runs on the file
from the cache and equals the published 4.25 module on the same frames.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import vapoursynth as vs

from conftest import (
    FileServer,
    clip_from_frames,
    flip_keeping_size_and_mtime,
    frame_array,
    panning_frames,
    run_cli,
    serve_files,
    table_rows,
)
from testkit import reference
from vsrife import weights
from vsrife.models import ARCHITECTURES
from vsrife.registry import MODELS, ModelEntry, UrlSource
from vsrife.weights import HashRecord, WeightsError

ENTRY = MODELS["4.25"]
FILENAME = "flownet_v4.25.pkl"


def _saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({"module." + key: value for key, value in state.items()}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def published_425() -> reference.PublishedRIFE4:
    return reference.published_rife4("4.25")


@pytest.fixture(scope="session")
def release_425(published_425: reference.PublishedRIFE4) -> bytes:
    """flownet_v4.25.pkl as the release stores it, with the published module's seeded random weights."""
    torch.manual_seed(3)
    return _saved(published_425.net().state_dict())


@pytest.fixture
def release_server(release_425: bytes) -> Iterator[FileServer]:
    with serve_files({f"/{FILENAME}": release_425}) as server:
        yield server


def _served(server: FileServer) -> ModelEntry:
    """The registry's 4.25 row with its release URL pointed at the local server."""
    (weight,) = ENTRY.files
    return replace(ENTRY, files=(replace(weight, sources=(UrlSource(f"{server.url}/{FILENAME}"),)),))


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_first_download_is_recorded_and_every_later_load_is_checked(
        model_dir: Path, release_server: FileServer, release_425: bytes, published_425: reference.PublishedRIFE4,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    entry = _served(release_server)
    path = model_dir / "4.25" / FILENAME
    assert (weights.hash_origin(entry), weights.cache_status(entry)) == ("first-use", "no")

    assert weights.resolve_weight_files(entry, None) == {"flownet": path}
    record = weights.read_record(path)
    assert record == HashRecord(_sha256(release_425), len(release_425), f"{release_server.url}/{FILENAME}",
                                record.recorded if record else "")
    assert f"recorded SHA-256 {_sha256(release_425)} of {FILENAME}" in capfd.readouterr().err
    assert (weights.hash_origin(entry), weights.cache_status(entry)) == ("recorded", "yes")
    assert weights.rehash_cached(entry) == {path: True}

    # reloads are hashed against the record; nothing is downloaded again
    assert weights.resolve_weight_files(entry, None, progress=False) == {"flownet": path}
    assert release_server.requests == [f"/{FILENAME}"]

    # changed in the cache: reported, refused offline, replaced online by a download that matches the record
    flip_keeping_size_and_mtime(path)
    assert weights.cache_status(entry) == "corrupt"
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"is corrupt \(its content differs from the SHA-256 in the record .*"
                                           r"of its first download"):
        weights.resolve_weight_files(entry, None)
    monkeypatch.delenv("VSRIFE_OFFLINE")
    weights.resolve_weight_files(entry, None)
    assert path.read_bytes() == release_425 and f"{path} is corrupt" in capfd.readouterr().err

    # changed at the source: a new download that differs from the record is refused, nothing replaces the record
    path.unlink()
    torch.manual_seed(4)
    release_server.files[f"/{FILENAME}"] = _saved(published_425.net().state_dict())
    with pytest.raises(WeightsError, match=rf"SHA-256 mismatch: expected {record.sha256 if record else ''} "
                                           rf"\(from the record .*{FILENAME}\.sha256\.json"):
        weights.resolve_weight_files(entry, None, progress=False)
    assert not path.exists() and weights.read_record(path) == record


@pytest.mark.parametrize("served", ["4.0 weights", "text"])
def test_a_first_download_that_is_not_the_model_is_not_recorded(model_dir: Path, served: str) -> None:
    if served == "text":
        body, expected = b"<html>rate limited</html>\n", "is not a weight file"
    else:  # a file of tensors, but another architecture's
        body, expected = _saved(ARCHITECTURES["rife-4.0"]().state_dict()), "is not the weights of model 4.25"
    with serve_files({f"/{FILENAME}": body}) as server, pytest.raises(WeightsError, match=expected):
        weights.resolve_weight_files(_served(server), None, progress=False)
    assert not any(p.is_file() for p in model_dir.rglob("*"))  # neither the file nor a record


def test_list_and_verify_show_the_recorded_hash(model_dir: Path, release_server: FileServer,
                                                release_425: bytes) -> None:
    path = weights.ensure_cached(_served(release_server), progress=False)["flownet"]
    row = table_rows(run_cli("models", "list").stdout)["4.25"]
    assert (row["HASH"], row["CACHED"], row["SHA256"]) == ("recorded", "yes", _sha256(release_425)[:12])
    assert row["SIZE"] == f"{len(release_425) / 1e6:.1f} MB"
    verify = run_cli("models", "verify", "4.25")
    assert (verify.returncode, verify.stdout) == (0, "4.25: ok (the hash recorded at its first download)\n")
    flip_keeping_size_and_mtime(path)
    verify = run_cli("models", "verify", "4.25", "4.26")
    assert verify.returncode == 1 and verify.stdout.splitlines() == [
        f"4.25: CORRUPT {path} (SHA-256 differs from the hash recorded at its first download; "
        f"`python -m vsrife models download 4.25` replaces it)",
        "4.26: not cached"]
    record = weights.record_path(path)
    record.write_text("{not json")
    damaged = run_cli("models", "verify", "4.25")
    assert damaged.returncode == 1 and damaged.stdout.startswith(f"4.25: the hash record {record} is unreadable")
    assert weights.cache_status(ENTRY) == "unreadable"


def test_rife_4_25_runs_end_to_end_on_the_recorded_file(model_dir: Path, release_server: FileServer,
                                                        published_425: reference.PublishedRIFE4,
                                                        release_425: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = weights.ensure_cached(_served(release_server), progress=False)["flownet"]
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")  # the registry's own row, from the cache: no download
    frames = panning_frames(2, 128, 96, 3)
    clip = clip_from_frames(frames)
    rife = vs.core.vfi.RIFE(clip, model="4.25", device="cpu", precision="fp32", factor_num=4, factor_den=1)
    ours = np.stack([frame_array(rife.get_frame(n)) for n in (1, 2, 3)])

    # the published module on the same frames, padded (by repeating the border, as the engine does) to 64
    net = published_425.net()
    net.load_state_dict({k.removeprefix("module."): v for k, v in torch.load(io.BytesIO(release_425)).items()})
    pair = [F.pad(torch.from_numpy(f).permute(2, 0, 1)[None], (0, 0, 0, 32), mode="replicate") for f in frames]
    expected = np.stack([published_425.run(net, pair[0], pair[1], t)[0, :, :96].numpy() for t in (0.25, 0.5, 0.75)])
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(ours[1] - frames.mean(axis=0).transpose(2, 0, 1)).mean() > 1e-3  # not a plain average

    with pytest.raises(vs.Error, match=re.escape("model 4.25 has no ensemble mode; use ensemble=0")):
        vs.core.vfi.RIFE(clip, model="4.25", device="cpu", ensemble=1)
    flip_keeping_size_and_mtime(path)
    with pytest.raises(vs.Error, match=rf"vfi.RIFE: the cached weight file {path} of model 4.25 is corrupt"):
        vs.core.vfi.RIFE(clip, model="4.25", device="cpu")
