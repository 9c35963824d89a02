"""docs/BENCHMARKS.md from the results in benchmarks/results/*.json: the one writer of that file.

Run: ``python -m benchmarks.render [--output FILE] [--check]``; a benchmark ends with ``publish``, which records its
results and runs it. Each section (benchmarks/sections.py) comes from one result; a section whose result is missing is
left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import harness
from .schema import Result
from .sections import (
    ISA_ROUNDING_INTRO,
    MODEL_ZOO_INTRO,
    cli_overhead,
    cluster,
    cpu_levers,
    dedup,
    isa_rounding,
    memory_soak,
    mlrt_peer,
    model_zoo,
    precision_cpu,
    quality,
    scale_rule,
    scene_metric,
    speed,
    weights_hash,
)
from .sections_rrin import rrin, rrin_levels

# Reads the result of a name (None when there is none).
Reader = Callable[[str], Result[Any] | None]
# A section of the document from what a Reader gives; None leaves it out.
Section = Callable[[Reader], str | None]


def _one(render: Callable[[Result[Any]], str], name: str) -> Section:
    def section(read: Reader) -> str | None:
        result = read(name)
        return None if result is None else render(result)

    return section


def _rrin(read: Reader) -> str | None:
    parts = [read("rrin_speed"), read("rrin_memory"), read("memory_model")]
    return None if all(p is None for p in parts) else rrin(*parts)


def _soak(name: str, heading: str) -> Section:
    return _one(lambda result: memory_soak(result, heading), name)


def _per_cpu_kind(name: str, render_one: Callable[[Result[Any], str], str], intro: str) -> Section:
    """A section with one table per kind of CPU, from the results <name>-<kind>; None when there are none."""
    def section(read: Reader) -> str | None:
        parts = [render_one(result, kind) for kind in harness.CPU_KINDS if (result := read(f"{name}-{kind}"))]
        return intro + "\n".join(parts) if parts else None

    return section


# The sections in their order in docs/BENCHMARKS.md.
SECTIONS: tuple[Section, ...] = (
    _one(speed, "speed"), _rrin, _one(quality, "quality"), _one(scene_metric, "scene_metric"), _one(dedup, "dedup"),
    _one(cli_overhead, "cli_overhead"), _one(precision_cpu, "precision_cpu"), _soak("soak", "## Memory soak"),
    _one(weights_hash, "weights_hash"), _one(mlrt_peer, "mlrt_peer"),
    _per_cpu_kind("model_zoo", model_zoo, MODEL_ZOO_INTRO),
    _one(cluster, "cluster"), _per_cpu_kind("isa_rounding", isa_rounding, ISA_ROUNDING_INTRO),
    _one(cpu_levers, "cpu_levers"), _one(scale_rule, "scale_rule"), _one(rrin_levels, "rrin_levels"),
    _soak("memory_long_run", "## Memory over 2000 frames at 1280x720"),
)


HEADER = """\
# Benchmarks

Written by `python -m benchmarks.render` from the results in `benchmarks/results/`, which the benchmarks write
(`python3 build.py bench` runs most of them; each section names its command, machine and date, and each result
file also the commit it measured).
"""


def document(read: Reader = harness.read_result) -> str:
    return "\n".join([HEADER, *(text for section in SECTIONS if (text := section(read)) is not None)])


def write(output: Path | None = None) -> Path:
    output = output or harness.document_path()
    output.write_text(document())
    print(f"wrote {output}", flush=True)
    return output


def publish(results: Mapping[str, Mapping[str, Any]], command: str) -> int:
    """How a benchmark ends: record its results (name -> data; the data must fit benchmarks/schema.py) as run by
    ``command``, rewrite the document; 0, the exit status."""
    for name, data in results.items():
        harness.write_result(name, data, command)
    write()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None, help="default: docs/BENCHMARKS.md")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the document differs from what the results give")
    args = parser.parse_args(argv)
    if args.check:
        current = (args.output or harness.document_path()).read_text()
        if current != document():
            print("docs/BENCHMARKS.md is stale: run python -m benchmarks.render", file=sys.stderr)
            return 1
        return 0
    write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
