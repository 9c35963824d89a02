"""The RRIN sections of docs/BENCHMARKS.md: speed and memory per frame size, and the coarse-to-fine levels study.
Typed result in, Markdown out, as in benchmarks/sections.py."""

from __future__ import annotations

from vsrife.models.rrin import AUTO_LEVELS_LARGEST, AUTO_LEVELS_RULE, auto_flow_levels

from .schema import MemoryModelData, Result, RrinLevelsData, RrinLevelsResult, RrinMemoryData, RrinSpeedData
from .sections import best_in_bold, machine, table


def rrin(speed_result: Result[RrinSpeedData] | None, memory: Result[RrinMemoryData] | None,
         model: Result[MemoryModelData] | None) -> str:
    parts = ["## RRIN\n"]
    if speed_result is not None:
        data = speed_result["data"]
        parts.append(
            f"Median seconds per interpolated frame through `core.vfi.RRIN` over {data['frames']} frames after one "
            "warm-up frame, same frames as above, at the default `levels=0` (the levels column; 1 where the result "
            "predates the parameter). bf16 runs the convolutions in bfloat16; the warp coordinates stay fp32.\n\n"
            + table(["model", "frame size", "levels", "device", "s/frame"],
                    [[r["model"], r["size"], r.get("levels", 1), r["device"], f"{r['seconds']:.3f}"]
                     for r in data["rows"]]) + "\n")
    if memory is not None:
        cases = memory["data"]
        parts.append(
            "Peak resident memory of the whole process (torch, weights, frames included) for one RRIN pass on the "
            "CPU in fp32, each case in a fresh process (`testkit/memory_probe.py`; tiles overlap by at least "
            f"{cases['overlap']} px), and the growth during the pass. `benchmarks/memory_rrin.py` fits the per-pixel "
            "model that `tile=0` uses.\n\n"
            + table(["frame size", "levels", "tiling", "peak RSS", "growth during the pass", "time"],
                    [[r["size"], r.get("levels", 1), r["tiling"], f"{r['peak_gib']:.2f} GiB",
                      f"{r['growth_gib']:.2f} GiB", f"{r['seconds']:.0f} s"] for r in cases["rows"]]) + "\n")
    if model is not None:
        fits = ", ".join(f"{f['model']} {f['bytes_per_pixel']:.0f} bytes per padded pixel + "
                         f"{f['constant_mib']:.0f} MiB ({f['sizes']})" for f in model["data"]["fits"])
        parts.append(
            "The per-pixel model that `tile=0` uses comes from `benchmarks/memory_rrin.py` (growth of one untiled "
            "pass in a fresh process at several sizes, least-squares line; CPU fp32; measured "
            f"{model['date']} on this machine): {fits}.\n")
    return "\n".join(parts)


def _levels_table(results: list[RrinLevelsResult], what: str) -> str:
    levels = sorted({int(k) for r in results for k in r["scores"]})
    rows = []
    for r in results:
        cells = best_in_bold({int(k): v for k, v in r["scores"].items()}, levels)
        rows.append([r["label"], r["triplets"], *cells, f"{r['frame_average']:.2f}",
                     auto_flow_levels(r["width"], r["height"])])
    return table([what, "triplets", *(f"{k} level{'s' * (k > 1)}" for k in levels), "neighbour average", "auto"],
                 rows)


def fewest_lost(results: list[RrinLevelsResult]) -> dict[int, tuple[int, float]]:
    """Per width: the levels whose worst loss to the best levels of a row of that width is smallest, and that loss."""
    chosen = {}
    for width in sorted({r["width"] for r in results}):
        rows = [{int(k): v for k, v in r["scores"].items()} for r in results if r["width"] == width]
        worst = {k: max(max(row.values()) - row[k] for row in rows) for k in rows[0]}
        best = min(worst, key=lambda k: worst[k])
        chosen[width] = (best, worst[best])
    return chosen


def rule_text() -> str:
    """AUTO_LEVELS_RULE in words: "longer side up to 400 px: 1; ...; above: 4"."""
    parts = [f"up to {limit} px: {levels}" for limit, levels in AUTO_LEVELS_RULE]
    return "longer side " + "; ".join(parts) + f"; above: {AUTO_LEVELS_LARGEST}"


def rrin_levels(result: Result[RrinLevelsData]) -> str:
    d = result["data"]
    group = {name: [r for r in d["results"] if r["group"] == name] for name in ("bikes", "synthetic")}
    return "\n".join([
        "## RRIN's coarse-to-fine levels chosen by the frame size", "",
        "How many levels `core.vfi.RRIN`'s flow net should run coarse to fine (`levels`) at which frame size: "
        "frame-drop PSNR (dB) of the network itself (CPU fp32, t = 0.5, the outer frames kept and the middle one "
        f"scored, full-range RGB) with weights `{d['weights']}`. Command: `{result['command']}`; measured "
        f"{result['date']} on {machine(result)} ({d['minutes']:.0f} min). Best per row in bold; \"auto\" is "
        "what `levels=0` picks (`vsrife.models.rrin.auto_flow_levels`).", "",
        "**bikes.mp4 frames 229-249** (the trainer's held-back validation frames; frames 0-39 are the public "
        "quality gate and were not used), resized by ffmpeg; triplets of frames 2 and 4 apart.", "",
        _levels_table(group["bikes"], "frames"), "",
        "**Synthetic translations** of the scale study (exact whole-pixel motion, a fixed fraction of the width).", "",
        _levels_table(group["synthetic"], "size, motion"), "",
        "**Rule** (`AUTO_LEVELS_RULE`), chosen on these tables: per width, the levels that lose the fewest dB to the "
        "best levels of any row of that width: "
        + "; ".join(f"{width} px: {levels} (at most {lost:.2f} dB below a row's best)"
                    for width, (levels, lost) in fewest_lost(d["results"]).items())
        + f". The rule between and beyond the measured widths: {rule_text()}.",
    ]) + "\n"
