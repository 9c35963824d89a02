"""The sections of docs/BENCHMARKS.md, one function per benchmark: its typed result (benchmarks/schema.py) in, its
Markdown out. The results hold every number shown; these functions only format them. benchmarks/render.py puts
the sections in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vsrife.scale import SCALES

from . import harness
from .schema import (
    CliOverheadData,
    ClusterData,
    CpuLeversData,
    DedupData,
    IsaCell,
    IsaRoundingData,
    MlrtPeerData,
    ModelZooData,
    ModelZooRow,
    PrecisionCpuData,
    QualityData,
    Result,
    ScaleResult,
    ScaleRuleData,
    SceneMetricData,
    SoakData,
    SpeedData,
    WeightsHashData,
)

# The runs that chose the soak's fix (the plugin's malloc_trim every 64 inferences), before it existed: reproduce them
# by building the plugin of commit d6c642f (no trim) and running `python -m benchmarks.soak --no-report --arena-max N`.
BEFORE_THE_FIX = """\
Without the fix (the plugin as of commit d6c642f, before `malloc_trim`, run with today's `python benchmarks/soak.py
--no-report --arena-max N`; 2026-11-23, same machine, one run each): growth over the second half +69.6 MB with
`MALLOC_ARENA_MAX=16` (glibc's default on 2 cores) and +8.4 MB with `MALLOC_ARENA_MAX=2`. With the fix, two runs of
`python3 build.py soak` grew by +21.9 MB and by the figure above. Limiting the arenas with `mallopt` when the plugin
loads was also tried and did not flatten the curve: glibc has fixed its arena limit by then.
"""




def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def line(cells: Sequence[object]) -> str:
        return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def machine(result: Result[Any], *, bf16: bool = False, threads: bool = True, torch: bool = True,
            vapoursynth: bool = False) -> str:
    """How a section names the machine: "AMD EPYC (has native bf16), 2 torch threads, torch ..."."""
    facts = result["machine"]
    text = facts["cpu"] + (f" ({'has' if facts['native_bf16'] else 'lacks'} native bf16)" if bf16 else "")
    if threads:
        text += f", {facts['torch_threads']} torch threads"
    if torch:
        text += f", torch {facts['torch']}"
    if vapoursynth:
        text += f", VapourSynth {facts['vapoursynth']}"
    return text


# ---------------------------------------------------------------------------------------------- sections


def speed(result: Result[SpeedData]) -> str:
    data = result["data"]
    rows = [[r["model"], r["size"], r["device"], f"{r['ours_s']:.3f}", f"{r['published_s']:.3f}",
             f"{r['speedup']:.2f}x"] for r in data["rows"]]
    return (
        "## RIFE 4.0 against the published code\n\n"
        f"{result['date']} on {machine(result, vapoursynth=True)}.\n\n"
        f"Command: `{result['command']}`. Median seconds per interpolated frame over "
        f"{data['rounds']} alternating rounds of {data['frames']} frames each (each round after one warm-up frame). "
        "Ours runs end to end through `core.vfi.RIFE`; the published code runs on tensors padded the way its plugin "
        f"pads them (multiples of {data['reference_pad']}).\n\n"
        + table(["model", "frame size", "device", "ours (s/frame)", "published 2.0.0 (s/frame)", "speed-up"], rows)
        + "\n")


def quality(result: Result[QualityData]) -> str:
    rows = [[r["model"], f"{r['ours_db']:.2f} dB", "-" if r["published_db"] is None else f"{r['published_db']:.2f} dB"]
            for r in result["data"]["rows"]]
    return (
        "## Quality\n\n"
        "Frame-drop protocol on frames 0-39 of bikes.mp4 (keep the even frames, interpolate the odd ones with "
        "`multi=2`, mean PSNR against the real odd frames, full-range RGB, CPU fp32), same run. The published "
        "column is the published inference code's score from shared/DESIGN.md. The neighbour average is the mean "
        "of the two kept frames: the floor any interpolation must beat.\n\n"
        + table(["model", "ours", "published code"], rows) + "\n")


def scene_metric(result: Result[SceneMetricData]) -> str:
    data = result["data"]
    rows = [[f"{r['pair'][0]} -> {r['pair'][1]}", f"{r['metric']:.3f}", r["kind"]] for r in data["rows"]]
    return (
        "## Scene-change metric\n\n"
        "The `sc=1` detector's metric (mean absolute RGB difference at quarter resolution) on all "
        f"{data['pairs']} neighbouring pairs of {data['clip']}, against the default `sc_threshold` of "
        f"{data['threshold']}.\n\n"
        + table(["frames", "metric", ""], rows) + "\n")


def dedup(result: Result[DedupData]) -> str:
    data = result["data"]
    parts = ["## Animation: dedup\n"]
    study = data.get("threshold")
    if study:
        names = list(study["summary"])
        rows = [[r["case"] + ("" if r["common"] else " (beyond the common settings)"),
                 "largest held pair" if r["kind"] == "held" else "smallest moving pair",
                 *(f"{r['values'][name]:.5f}" for name in names)] for r in study["rows"]]
        summary = [[name, f"{v['largest_held']:.5f}", f"{v['smallest_moving']:.5f}", f"{v['ratio']:.2f}"]
                   for name, v in study["summary"].items()]
        parts.append(
            "Threshold study (`python -m benchmarks.dedup --part threshold`): candidate difference measures on "
            f"neighbouring frame pairs of {study['clip']} frames {study['first_frame']}-"
            f"{study['first_frame'] + study['frames'] - 1} (frames 0-39 are the quality gate), made \"on twos\" and "
            "\"on threes\" losslessly and through libx264 round trips (yuv420p), its real neighbouring frames (slow "
            "real motion) and a synthetic 1-pixel pan. A held pair must measure below the threshold, a moving one "
            f"above. Common settings: {', '.join(study['common'])}. "
            f"{machine(result, threads=False)}; {result['date']}.\n\n"
            + table(["case", "", *names], rows) + "\n\n"
            + table(["measure", "largest held (common settings)", "smallest moving", "ratio"], summary) + "\n\n"
            f"The chosen measure is the mean absolute difference at quarter resolution (the scene-change metric, "
            f"vsrife/scene.py): the widest ratio; the default `dedup_threshold` is {study['threshold']}, near the "
            "geometric middle of its largest held and smallest moving pair. At crf 28 with the veryfast preset "
            "held and moving pairs overlap for every measure: there some held frames count as drawings (they are "
            "then returned as the copies they are).\n")
    quality = data.get("quality")
    if quality:
        rows = [[{2: "twos", 3: "threes"}[r["hold"]], r["encoding"], str(r["held_frames"]), f"{r['dedup']:.2f}",
                 f"{r['frame_drop']:.2f}", f"{r['copies']:.2f}"] for r in quality["rows"]]
        parts.append(
            "PSNR (dB, RGB) at the held positions against the real frames there (`python -m benchmarks.dedup --part "
            f"quality`): {quality['clip']} frames {quality['first_frame']}-"
            f"{quality['first_frame'] + quality['frames'] - 1} made on twos/threes, RIFE {quality['model']} CPU fp32. "
            "dedup: the `multi=2` outputs of `dedup=1` at the held frames' positions; frame drop: the frame-drop "
            "protocol on the drawings (every second or third frame kept, `multi=2` or `3`); copies: the held frames "
            "as the clip shows them, which is also what the filter returns at those positions without dedup.\n\n"
            + table(["drawn on", "clip", "held frames", "dedup", "frame drop", "copies"], rows) + "\n")
    stills = data.get("stills")
    if stills:
        seconds = stills["seconds"]
        parts.append(
            f"Time saved by stills (`python -m benchmarks.dedup --part stills`): {stills['source_frames']} frames of "
            f"{stills['clip']} (640x272) of which a still of {stills['still_frames']}, `multi=2` "
            f"({stills['output_frames']} outputs), RIFE {stills['model']} CPU fp32, best of {stills['runs']}: "
            f"{seconds['plain']:.1f} s without dedup, {seconds['dedup']:.1f} s with it "
            f"({100 * (1 - seconds['dedup'] / seconds['plain']):.0f} % less). {machine(result)}; "
            f"{result['date']}.\n")
    return "\n".join(parts)


def cli_overhead(result: Result[CliOverheadData]) -> str:
    data = result["data"]
    rows = [["`python -m vsrife interpolate bikes.mp4 -o out.mp4 --multi 2`", f"{data['cli_s']:.1f} s",
             f"{data['cli_fps']:.2f}"],
            [f"`vspipe -c y4m graph.vpy - \\| ffmpeg -i - {data['encoder']} out.mp4`", f"{data['pipe_s']:.1f} s",
             f"{data['pipe_fps']:.2f}"],
            ["overhead of the command line (median of the per-round ratios)", f"{data['overhead_percent']:+.1f} %", ""]]
    return (
        "## Command line\n\n"
        "`python -m vsrife interpolate --multi 2` on bikes.mp4 against the same graph (the `script` command's "
        "output) through vspipe and ffmpeg with the same encoder settings, in the same run "
        f"(`benchmarks/cli_overhead.py`): {data['frames']} output frames (640x272, RIFE 4.0, CPU fp32), median of "
        f"{data['rounds']} alternating rounds, {result['date']} on {machine(result, threads=False, torch=False)}. "
        "Wall time includes start-up, decoding and encoding.\n\n"
        + table(["route", "wall time", "output fps"], rows) + "\n")


def precision_cpu(result: Result[PrecisionCpuData]) -> str:
    data = result["data"]
    rows = [[r["precision"], f"{r['seconds']:.3f}", f"{r['vs_fp32']:.1f}x"] for r in data["rows"]]
    return (
        "## Precision on the CPU\n\n"
        f"One RIFE 4.0 forward pass at {data['width']}x{data['height']} (`benchmarks/precision_cpu.py`, median of "
        f"{data['repeats']} after a warm-up, {result['date']} on {machine(result, threads=False, torch=False)}, "
        f"{result['machine']['torch_threads']} threads). PyTorch runs fp16 convolutions on the CPU far slower than "
        "fp32, so the filters refuse `precision=\"fp16\"` there and name bf16 and fp32 instead.\n\n"
        + table(["precision", "s/pass", "vs fp32"], rows) + "\n")


def memory_soak(result: Result[SoakData], heading: str) -> str:
    data = result["data"]
    width, height = data["size"].split("x")
    options = f"--frames {data['frames']} --size {data['size']}" + (
        f" --cache-mb {data['cache_mb']}" if data["cache_mb"] else "")
    cache = ("VapourSynth's default frame cache" if data["cache_mb"] is None else
             f"VapourSynth's frame cache bounded to {data['cache_mb']} MB (`core.max_cache_size`; its default is "
             "half the RAM)")
    verdict = "pass" if data["passed"] else "FAIL"
    text = (
        f"{heading}\n\n"
        f"`{result['command']}` (`benchmarks/soak.py {options}`): {data['frames']} output frames of RIFE 4.0 "
        f"`multi=2` at {width}x{height} on the CPU with default settings through the real vspipe binary (bikes.mp4 "
        f"scaled and looped), {cache}, resident memory of the vspipe process sampled every {data['sample_seconds']} s "
        "against vspipe's "
        "own frame count, `MALLOC_ARENA_MAX` "
        f"{'unset' if data['arena_max'] is None else '=' + str(data['arena_max'])}; {result['date']} on "
        f"{machine(result, threads=False, torch=False, vapoursynth=True)}, {data['seconds']:.0f} s.\n\n"
        + table(["output frames done", "resident memory"], [[done, f"{mb:.1f} MB"] for done, mb in data["curve"]])
        + "\n\n"
        f"Growth over the second half (the peak after half-way minus the value at half-way): {data['growth_mb']:+.1f} "
        f"MB (limit {data['limit_mb']:.0f} MB): {verdict}.\n")
    return text + ("\n" + BEFORE_THE_FIX if heading == "## Memory soak" else "")


def weights_hash(result: Result[WeightsHashData]) -> str:
    data = result["data"]
    return (
        "## Weight verification\n\n"
        "What hashing cached weights on every load costs (`benchmarks/weights_hash.py`, median of "
        f"{data['repeats']}, file in the page cache, {result['date']} on "
        f"{machine(result, threads=False, torch=False)}).\n\n"
        + table(["step", "time"], [[f"SHA-256 of 4.0's {data['file']} ({data['size_mb']:.1f} MB)",
                                     f"{data['hash_ms']:.0f} ms"],
                                    ["torch.load + build the net", f"{data['load_ms']:.0f} ms"]]) + "\n")


def mlrt_peer(result: Result[MlrtPeerData]) -> str:
    data = result["data"]
    rows = []
    for r in data["rows"]:
        vs_ours = ("reference" if r["psnr_vs_ours"] is None else
                   f"{r['psnr_vs_ours']['mean_db']:.2f} dB (worst {r['psnr_vs_ours']['worst_db']:.2f})")
        rows.append([r["runtime"], f"{r['seconds']:.3f}", f"{r['vs_ov_bf16']:.2f}", vs_ours,
                     f"{r['frame_drop_db']:.2f} dB"])
    ratio = data["default_vs_ov_bf16"]
    return (
        "## CPU peer: vs-mlrt OpenVINO\n\n"
        f"RIFE 4.0 at {data['width']}x{data['height']} ({data['sample']}), {result['date']} on "
        f"{machine(result, bf16=True)}, {data['versions']}. Command: `{result['command']}`.\n\n"
        "Both sides run the published 4.0 weights end to end through VapourSynth on the same frame pairs: ours as "
        "`core.vfi.RIFE`, the peer as `core.ov.Model` (vs-mlrt's OpenVINO CPU plugin, `vsmlrt.Backend.OV_CPU` "
        "defaults: one stream, pinned threads) fed the clips `vsmlrt.RIFEMerge` builds (both frames, the timestep "
        "plane, the normalised grid planes and the pixel-size planes) and an fp32 ONNX that this benchmark exports "
        "from our module in that layout; bf16 is OpenVINO's inference-precision hint on the same file. The static "
        "graph leaves out the published large-motion rerun of block 0 (a data-dependent branch). The peer's "
        f"frames are padded to multiples of {data['mlrt_multiple']} (ours to {data['ours_padding']}), both by "
        f"repeating the edge. Median seconds per interpolated frame over {data['rounds']} alternating rounds of "
        f"{data['frames']} frames (each runtime after one warm-up frame); only ratios within this run count. PSNR vs "
        "ours fp32: mean and worst frame over the same frames; frame-drop PSNR: the even frames of the clip are "
        "interpolated and compared with the real odd ones.\n\n"
        + table(["runtime", "s/frame", "time vs OV bf16", "PSNR vs ours fp32", "frame-drop PSNR"], rows) + "\n\n"
        "Goal (issue 8): ours with default settings in at most half the time of OV bf16, PSNR within 0.1 dB of "
        f"ours fp32. This run: {ratio:.2f}x the time of OV bf16 ({'met' if ratio <= 0.5 else 'not met'}), "
        f"frame-drop PSNR {data['default_vs_fp32_db']:+.3f} dB against ours fp32.\n")


# Issue 21: every 4.x network at most this many times 4.0's time per GFLOP.
PER_GFLOP_GOAL = 1.25


def per_gflop_vs_baseline(rows: Sequence[ModelZooRow]) -> list[float]:
    """Each row's seconds per GFLOP divided by that of the row of model 4.0."""
    baseline = next(r for r in rows if "4.0" in r["models"])
    per_gflop = baseline["seconds"] / baseline["gflop"]
    return [r["seconds"] / r["gflop"] / per_gflop for r in rows]


def model_zoo(result: Result[ModelZooData], kind: str) -> str:
    data = result["data"]
    ratios = per_gflop_vs_baseline(data["rows"])
    rows = [[r["family"], ", ".join(r["models"]), f"{r['parameters_m']:.1f} M", r["padded"], f"{r['gflop']:.0f}",
             f"{r['seconds']:.2f}", f"{ratio:.2f}"] for r, ratio in zip(data["rows"], ratios, strict=True)]
    worst = max(range(len(ratios)), key=ratios.__getitem__)
    return (
        f"### {harness.CPU_KINDS[kind]}\n\n"
        f"One run, {result['date']} on {machine(result, torch=False).replace(', ', ' with ', 1)}, torch "
        f"{result['machine']['torch']}, plugin {data['plugin']}, commit {result['commit']}: the fastest of "
        f"{data['frames']} frames in each of {data['rounds']} rounds (`{result['command']}`).\n\n"
        + table(["family", "models (same network)", "parameters", "padded to", "GFLOP/frame", "s/frame",
                  "time per GFLOP vs 4.0"], rows)
        + f"\n\nGoal (issue 21): every network at most {PER_GFLOP_GOAL:.2f}x 4.0's time per GFLOP. This run: worst "
        f"{ratios[worst]:.2f}x ({', '.join(data['rows'][worst]['models'])}; "
        f"{'met' if ratios[worst] <= PER_GFLOP_GOAL else 'not met'}).\n")


MODEL_ZOO_INTRO = (
    "## Model zoo\n\n"
    "Every RIFE 4.x network at 1280x720 on the CPU in fp32 (`python -m benchmarks.model_zoo`), one table per kind "
    "of CPU: seconds per interpolated frame through `core.vfi.RIFE` (`multi=2`, each round after one warm-up "
    "frame, the rounds visiting every network in turn) and GFLOP per frame (the blocks on the padded pair plus "
    "one encoder pass, as computed here: torch's FlopCounterMode counts the convolutions, not the warps and "
    "resizes, and our upsampling layers run as 3x3 convolutions). Seeded random weights: a pass costs the same "
    "whatever the weights, except that 4.0/4.1 rerun blocks on large motion, which random weights do not "
    "trigger. The machines were shared with other work, so the fastest frame counts and differences under "
    "about 20 % are noise; GFLOP is exact. Time per GFLOP vs 4.0: a network's seconds per GFLOP over 4.0's, "
    "both from the same run.\n\n")


def cluster(result: Result[ClusterData]) -> str:
    d = result["data"]
    return (
        "## Cluster rendering\n\n"
        "`benchmarks/cluster.py`: the same job in one process (`render.interpolate`, what `interpolate` runs) and "
        "on a local Ray cluster (`cluster.interpolate(address=\"local\")`, what `interpolate --cluster local` "
        f"runs), both in the benchmark's process: bikes.mp4 ({d['frames'] // 2} frames, 640x272) to {d['frames']} "
        f"frames, RIFE 4.0, CPU fp32, libx264 crf 16 into .mp4; `--chunk-frames {d['chunk_frames']}` gives "
        f"{d['chunks']} chunks; "
        f"{d['workers']} workers (one per core, one thread each); median of {d['rounds']} alternating rounds, "
        f"{result['date']} on {machine(result, threads=False, torch=False)}.\n\n"
        + table(["route", "wall time", "output fps"],
                 [[f"one process (torch on {d['workers']} threads)", f"{d['one_s']:.1f} s", f"{d['one_fps']:.2f}"],
                  [f"local cluster, {d['workers']} workers", f"{d['cluster_s']:.1f} s", f"{d['cluster_fps']:.2f}"]])
        + "\n\nWhere the cluster's time goes (last round; times measured inside the tasks):\n\n"
        + table(["cost", "value"], [
            ["output checked, audio probed, boundaries placed on scene cuts (`plan`)", f"{d['plan_s']:.2f} s per job"],
            ["Ray started (`connect`)", f"{d['connect_s']:.2f} s per job"],
            ["submission to a task's start (first wave)", f"{d['start_s']:.2f} s per chunk"],
            ["task set-up: script evaluated, source opened, model loaded (median / max)",
             f"{d['setup_s']:.2f} s / {d['setup_max_s']:.2f} s per chunk"],
            ["frames rendered and encoded, per worker", f"{d['frame_s']:.3f} s per output frame"],
            ["frame count of the chunk file checked", f"{d['check_s']:.3f} s per chunk"],
            ["chunks joined with the audio (`concat`, no re-encoding)",
             f"{d['join_s']:.2f} s per job ({d['join_ms_per_frame']:.2f} ms per output frame)"]])
        + "\n\nEstimate for N workers (GPUs, or nodes), C chunks of F output frames, s seconds per frame on one "
        "worker:\n\n"
        "    T(N) = plan + connect + start + ceil(C / N) * (setup + F * s + check) + join\n\n"
        f"With this run's numbers (N = {d['workers']}, C = {d['chunks']}, F = {d['frames'] / d['chunks']:.0f}) the "
        f"formula gives {d['predicted_s']:.1f} s against {d['measured_s']:.1f} s measured. The formula takes the "
        "median set-up; the first chunk a fresh worker runs also imports PyTorch and VapourSynth (the max above), and "
        "a local runtime takes a moment to stop: most of the gap. The fixed cost per chunk, setup + check = "
        f"{d['fixed_per_chunk_s']:.2f} s, is {d['fixed_share_percent']:.1f} % of a {d['frames'] / d['chunks']:.0f}"
        f"-frame chunk here; at the default 1000 frames per chunk it is {d['fixed_share_default_percent']:.2f} %. "
        "Example: 250,000 output frames (a film at 2x) in 250 chunks on 8 GPUs that each make s = 0.01 s per frame: "
        f"ceil(250 / 8) = 32 waves of {d['fixed_per_chunk_s']:.2f} + 1000 x 0.01 s = {d['example_waves_s']:.0f} s, "
        f"plus the join (about {d['example_join_s']:.0f} s at this run's rate per frame), against 2500 s of frames on "
        "one GPU.\n")


def cpu_levers(result: Result[CpuLeversData]) -> str:
    d = result["data"]
    compile_note = f" torch.compile's first pass (compilation) took {d['compile_s']:.0f} s." if d["compile"] else ""
    rows = [[r["configuration"], f"{r['seconds']:.3f}", f"{r['speedup']:.2f}x"] for r in d["rows"]]
    return (
        "## CPU levers\n\n"
        f"RIFE 4.0, one forward pass on two real {d['size']} frames of {d['sample']} padded to {d['padded']}, "
        f"{result['date']} on {machine(result, bf16=True)}. Command: `{result['command']}` (`build.py bench` runs "
        f"it). Median over {d['rounds']} alternating rounds after one warm-up pass each.{compile_note} The engine's "
        "default on the CPU is the last plain row: channels-last with the native glue, bf16 on CPUs with native "
        "bf16. In every row the flow, the warps and the blend are float32; only the convolutions change precision. "
        "Glue: the memory-bound work between the convolutions (warping both frames, resizing, concatenating, "
        "upsampling each block's output and adding it to the flow, the final blend); the reference is "
        "vsrife/kernels/reference.py in plain PyTorch (what CUDA runs), the native glue is vsrife/kernels/glue.cpp, "
        "which fuses each step into one pass and only warps the pixels that a downscaled block reads.\n\n"
        + table(["configuration", "s/pass", "speed-up"], rows) + "\n\n"
        f"The convolutions alone (oneDNN's time for the {d['convolutions']} convolutions of one pass of the default "
        f"configuration, from torch.profiler): {d['convolutions_s']:.3f} s; everything else in that pass: the rest "
        "of its time.\n")


def best_in_bold[K](scores: dict[K, float], columns: Sequence[K]) -> list[str]:
    """One cell per column: its score in dB, the row's best in bold, "-" where it was not measured."""
    best = max(scores, key=lambda k: scores[k])
    return ["-" if k not in scores else f"**{scores[k]:.2f}**" if k == best else f"{scores[k]:.2f}" for k in columns]


def _scale_table(results: list[ScaleResult], what: str) -> str:
    rows = []
    for r in results:
        cells = best_in_bold({float(scale): value for scale, value in r["scores"].items()}, SCALES)
        rows.append([r["label"], r["triplets"], *cells, f"{r['auto']:g}", f"{r['margin']:+.2f}"])
    return table([what, "triplets", *(f"{s:g}" for s in SCALES), "auto", "auto - 1"], rows)


def _worst(results: list[ScaleResult]) -> str:
    worst = min(results, key=lambda r: r["margin"])
    return f"{worst['margin']:+.2f} dB ({worst['label']})"


def scale_rule(result: Result[ScaleRuleData]) -> str:
    d = result["data"]
    group = {name: [r for r in d["results"] if r["group"] == name] for name in ("bikes", "synthetic", "held-out")}
    chosen_on = group["bikes"] + group["synthetic"]
    bar = ("auto is at least as good as scale 1 on every row measured, so it qualifies as the default"
           if min(r["margin"] for r in d["results"]) >= 0 else
           "auto is worse than scale 1 on some measured row, so it does not qualify as the default (which stays "
           "`scale=1`)")
    lines = [
        "## Scale chosen by the frame size", "",
        "Which `scale` (flow resolution) suits RIFE 4.0 at which frame size: frame-drop PSNR (dB) per scale through "
        f"`core.vfi.RIFE` (`multi=2`, model 4.0, CPU fp32). Command: `{result['command']}`; measured "
        f"{result['date']} on {machine(result)} ({d['minutes']:.0f} min). A triplet is three consecutive frames: the "
        "outer two are kept, the middle one is synthesized at t = 0.5 and scored against the real one (mean over "
        "the triplets, full-range RGB). Best scale per row in bold; \"auto\" is the scale `scale=0` picks for that "
        "size (`vsrife.scale.auto_scale`) and \"auto - 1\" its margin over scale 1 in dB. Scale 4 is measured on "
        "frames up to 640x360 only, 2 up to 1080p, 0.25 from 960x400.", "",
        "**bikes.mp4 frames 40-249** (frames 0-39 are the public quality gate and were not used), resized by "
        "ffmpeg (bicubic) from its native 640x272; triplets spread evenly over those frames, none across a scene "
        "cut. Frames larger than 640x272 are upscaled, so they hold no more detail than the original, but their "
        "motion in pixels grows with the size, which is what the scale is for.", "",
        _scale_table(group["bikes"], "size"), "",
        "**Synthetic motion of known size**: a scikit-image sample image moving by (d, d/2) pixels per frame "
        "behind an elliptic patch of another one moving by (-d/2, d), in whole pixels (each frame an exact crop, "
        "the middle frame exact); d is a fixed fraction of the width, like one scene filmed at several "
        "resolutions. One triplet per scene: "
        f"{'; '.join(f'{bg} behind {fg}' for bg, fg in d['scenes'])} (the first ones on the larger sizes).", "",
        _scale_table(group["synthetic"], "size, motion"), "",
        "**Rule** (`vsrife.scale.AUTO_SCALE_RULE`, by the frame's pixel count), chosen on the two tables above: "
        f"{d['rule']}. Worst margin over scale 1 there: {_worst(chosen_on)}.",
    ]
    if group["held-out"]:
        lines += ["", "**Held-out evaluation, reported only** (never used to choose the rule): bigbuckbunny.mp4 "
                  "(1280x720, 132 frames) resized, triplets spread over the clip, none across a scene cut. Worst "
                  f"margin of auto over scale 1: {_worst(group['held-out'])}.", "",
                  _scale_table(group["held-out"], "clip")]
    lines += ["", f"Verdict: {bar}."]
    return "\n".join(lines) + "\n"


def isa_rounding(result: Result[IsaRoundingData], kind: str) -> str:
    data = result["data"]

    def cell(measured: IsaCell) -> str:
        psnr = measured["psnr"]
        return "identical" if psnr is None else f"{measured['max_abs']:.1e} / {psnr:.1f} dB"

    rows = [[row["setting"], *(cell(measured) for measured in row["cells"])] for row in data["rows"]]
    return (
        f"### {harness.CPU_KINDS[kind]}\n\n"
        f"{result['date']} on {machine(result, threads=False)} (ATen {data['aten']}, native kernels "
        f"{data['kernels']}, {data['threads']} torch threads), commit {result['commit']}, {data['pairs']} midpoints "
        f"per case (`{result['command']}`).\n\n"
        + table(["setting against native", *data["cases"]], rows) + "\n")


ISA_ROUNDING_INTRO = (
    "## Rounding between instruction sets\n\n"
    "How much `core.vfi.RIFE`'s frames move when oneDNN (`ONEDNN_MAX_CPU_ISA`), PyTorch's own kernels "
    "(`ATEN_CPU_CAPABILITY`) and the native kernels (`VSRIFE_KERNELS`) are capped below the CPU's best, each "
    "setting in a process of its own (`python -m benchmarks.isa_rounding`): what a cluster that mixes CPU kinds "
    "joins. Midpoints of bikes.mp4 frame pairs at 640x272, RIFE 4.0 with its real weights and RIFE 4.25 with "
    "seeded random weights (which amplify rounding). Cells: max abs difference / PSNR against the uncapped run "
    "(RGB in [0, 1]). One table per kind of CPU.\n\n")


