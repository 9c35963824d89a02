"""The benchmark results have their typed shape (benchmarks/schema.py): the files in benchmarks/results/ as they are,
and what a benchmark records through render.publish, which refuses another shape before it writes anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import harness, render
from benchmarks.schema import SCHEMAS, SchemaError, check_result


def test_every_result_has_its_benchmarks_shape() -> None:
    paths = sorted(harness.RESULTS.glob("*.json"))
    assert paths
    for path in paths:
        check_result(path.stem, json.loads(path.read_text()))
    assert {path.stem.split("-", 1)[0] for path in paths} <= set(SCHEMAS)


def test_another_shape_is_refused_by_its_key() -> None:
    result = json.loads((harness.RESULTS / "speed.json").read_text())
    result["data"]["rows"][0]["ours_s"] = "fast"
    with pytest.raises(SchemaError, match=re.escape("speed: data.rows[0].ours_s: float expected, got 'fast'")):
        check_result("speed", result)
    del result["data"]["rounds"]
    with pytest.raises(SchemaError, match="speed: data: no 'rounds'"):
        check_result("speed", result)


def test_publish_records_the_result_and_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSRIFE_BENCH_RESULTS", str(tmp_path))
    data = {"repeats": 3, "file": "flownet.pkl", "size_mb": 35.0, "hash_ms": 26.0, "load_ms": 64}
    with pytest.raises(SchemaError, match="weights_hash: data: unknown key 'extra'"):
        render.publish({"weights_hash": {**data, "extra": 1}}, "python -m benchmarks.weights_hash")
    assert not list(tmp_path.iterdir())  # nothing written
    assert render.publish({"weights_hash": data}, "python -m benchmarks.weights_hash") == 0
    assert json.loads((tmp_path / "weights_hash.json").read_text())["data"] == data
    assert "## Weight verification" in (tmp_path / "BENCHMARKS.md").read_text()
