"""The typed schema of the results in benchmarks/results/*.json: what each benchmark writes and its section reads.

A result is a ``Result[<its data>]``; SCHEMAS names the data type of each benchmark (a benchmark that keeps one
result per kind of CPU writes ``<name>-<kind>``). ``harness.write_result`` and ``harness.read_result`` check every
result against it (``conform``), so a benchmark that writes another shape fails when it writes, and the renderer
reads typed data. The types follow the JSON: numbers that may be whole are ``float``, a missing value is ``None``.
"""

# No `from __future__ import annotations`: TypedDict reads NotRequired and total from the evaluated annotations.
import types
from typing import Any, NotRequired, TypedDict, TypeVar, Union, get_args, get_origin, get_type_hints, is_typeddict


class Machine(TypedDict):
    cpu: str
    native_bf16: bool
    torch_threads: int
    torch: str
    vapoursynth: str


class Result[D](TypedDict):
    benchmark: str
    date: str  # YYYY-MM-DD
    commit: str | None  # the measured code's git commit, "+changes" when the tree differed; None outside a checkout
    machine: Machine
    command: str  # how to run it again
    data: D  # every number its section shows
    note: NotRequired[str]  # where a result converted from an older document came from


# ---------------------------------------------------------------------------------------------- speed, quality


class SpeedRow(TypedDict):
    model: str
    size: str
    device: str
    ours_s: float
    published_s: float
    speedup: float


class SpeedData(TypedDict):
    rounds: int
    frames: int
    reference_pad: int
    rows: list[SpeedRow]


class RrinSpeedRow(TypedDict):
    model: str
    size: str
    device: str
    seconds: float
    levels: NotRequired[int]  # the flow net's coarse-to-fine levels (absent: measured before levels existed, 1)


class RrinSpeedData(TypedDict):
    frames: int
    rows: list[RrinSpeedRow]


class RrinMemoryRow(TypedDict):
    size: str
    levels: NotRequired[int]  # as in RrinSpeedRow
    tiling: str
    peak_gib: float
    growth_gib: float
    seconds: float


class RrinMemoryData(TypedDict):
    overlap: int
    rows: list[RrinMemoryRow]


class MemoryFit(TypedDict):
    model: str
    bytes_per_pixel: float
    constant_mib: float
    sizes: str


class MemoryModelData(TypedDict):
    fits: list[MemoryFit]


class QualityRow(TypedDict):
    model: str
    ours_db: float
    published_db: float | None


class QualityData(TypedDict):
    rows: list[QualityRow]


class SceneMetricRow(TypedDict):
    pair: list[int]
    metric: float
    kind: str


class SceneMetricData(TypedDict):
    clip: str
    pairs: int
    threshold: float
    rows: list[SceneMetricRow]


# ---------------------------------------------------------------------------------------------- dedup


class ThresholdRow(TypedDict):
    case: str
    kind: str  # "held" or "moving"
    pairs: int
    common: bool
    values: dict[str, float]  # measure -> its value


class Separation(TypedDict):
    largest_held: float
    smallest_moving: float
    ratio: float
    middle: float


class ThresholdStudy(TypedDict):
    clip: str
    first_frame: int
    frames: int
    threshold: float
    rows: list[ThresholdRow]
    summary: dict[str, Separation]  # measure -> how it separates held from moving pairs
    common: list[str]


class DedupQualityRow(TypedDict):
    hold: int
    encoding: str
    held_frames: int
    copies: float
    dedup: float
    frame_drop: float


class DedupQuality(TypedDict):
    clip: str
    first_frame: int
    frames: int
    model: str
    rows: list[DedupQualityRow]


class StillsSeconds(TypedDict):
    plain: float
    dedup: float


class Stills(TypedDict):
    clip: str
    first_frame: int
    source_frames: int
    still_frames: int
    output_frames: int
    seconds: StillsSeconds
    runs: int
    model: str


class DedupData(TypedDict, total=False):  # each part is measured on its own (--part)
    threshold: ThresholdStudy
    quality: DedupQuality
    stills: Stills


# ---------------------------------------------------------------------------------------------- costs and memory


class CliOverheadData(TypedDict):
    frames: int
    rounds: int
    encoder: str
    cli_s: float
    cli_fps: float
    pipe_s: float
    pipe_fps: float
    overhead_percent: float


class PrecisionRow(TypedDict):
    precision: str
    seconds: float
    vs_fp32: float


class PrecisionCpuData(TypedDict):
    width: int
    height: int
    repeats: int
    rows: list[PrecisionRow]


class SoakData(TypedDict):
    frames: int
    size: str  # WIDTHxHEIGHT
    cache_mb: int | None
    arena_max: int | None
    sample_seconds: float
    seconds: float
    curve: list[list[float]]  # (output frames done, resident MB)
    growth_mb: float
    limit_mb: float
    passed: bool


class WeightsHashData(TypedDict):
    repeats: int
    file: str
    size_mb: float
    hash_ms: float
    load_ms: float


class ClusterData(TypedDict):
    rounds: int
    chunk_frames: int
    chunks: int
    workers: int
    frames: int
    one_s: float
    one_fps: float
    cluster_s: float
    cluster_fps: float
    plan_s: float
    connect_s: float
    start_s: float
    setup_s: float
    setup_max_s: float
    frame_s: float
    check_s: float
    join_s: float
    join_ms_per_frame: float
    predicted_s: float
    measured_s: float
    fixed_per_chunk_s: float
    fixed_share_percent: float
    fixed_share_default_percent: float
    example_waves_s: float
    example_join_s: float


# ---------------------------------------------------------------------------------------------- the CPU


class PsnrVsOurs(TypedDict):
    mean_db: float
    worst_db: float


class MlrtRow(TypedDict):
    runtime: str
    seconds: float
    vs_ov_bf16: float
    psnr_vs_ours: PsnrVsOurs | None  # None: the reference itself
    frame_drop_db: float


class MlrtPeerData(TypedDict):
    sample: str
    width: int
    height: int
    frames: int
    rounds: int
    versions: str
    mlrt_multiple: int
    ours_padding: int
    rows: list[MlrtRow]
    default_vs_ov_bf16: float
    default_vs_fp32_db: float


class ModelZooRow(TypedDict):
    family: str
    models: list[str]
    parameters_m: float
    padded: str
    gflop: float
    seconds: float


class ModelZooData(TypedDict):
    frames: int
    rounds: int
    plugin: str
    width: int
    height: int
    rows: list[ModelZooRow]


class CpuLeversRow(TypedDict):
    configuration: str
    seconds: float
    speedup: float


class CpuLeversData(TypedDict):
    rounds: int
    compile: bool
    compile_s: float
    sample: str
    padded: str
    rows: list[CpuLeversRow]
    convolutions_s: float
    convolutions: int
    size: str


class IsaCell(TypedDict):
    max_abs: float
    psnr: float | None  # None: identical


class IsaRow(TypedDict):
    setting: str
    cells: list[IsaCell]


class IsaRoundingData(TypedDict):
    pairs: int
    aten: str
    kernels: str
    threads: int
    cases: list[str]
    rows: list[IsaRow]


class ScaleResult(TypedDict):
    group: str  # "bikes", "synthetic" or "held-out"
    label: str
    width: int
    height: int
    triplets: int
    scores: dict[str, float]  # scale (as "0.5") -> frame-drop PSNR
    auto: float
    margin: float


class ScaleRuleData(TypedDict):
    minutes: float
    results: list[ScaleResult]
    rule: str
    scenes: list[list[str]]


class RrinLevelsResult(TypedDict):
    group: str  # "bikes" or "synthetic"
    label: str
    width: int
    height: int
    triplets: int
    scores: dict[str, float]  # coarse-to-fine levels (as "2") -> frame-drop PSNR
    frame_average: float  # the neighbour average's PSNR on the same triplets


class RrinLevelsData(TypedDict):
    minutes: float
    weights: str
    results: list[RrinLevelsResult]


# The data type of every benchmark's result, by the benchmark's name.
SCHEMAS: dict[str, type] = {
    "speed": SpeedData, "rrin_speed": RrinSpeedData, "rrin_memory": RrinMemoryData, "memory_model": MemoryModelData,
    "quality": QualityData, "scene_metric": SceneMetricData, "dedup": DedupData, "cli_overhead": CliOverheadData,
    "precision_cpu": PrecisionCpuData, "soak": SoakData, "memory_long_run": SoakData, "weights_hash": WeightsHashData,
    "mlrt_peer": MlrtPeerData, "model_zoo": ModelZooData, "cluster": ClusterData, "isa_rounding": IsaRoundingData,
    "cpu_levers": CpuLeversData, "scale_rule": ScaleRuleData, "rrin_levels": RrinLevelsData,
}


class SchemaError(ValueError):
    """A result that does not have its benchmark's shape; the message names the key."""


def schema(name: str) -> type:
    """The data type of result ``name`` ("model_zoo-avx2" is a model_zoo result)."""
    benchmark = name.split("-", 1)[0]
    if benchmark not in SCHEMAS:
        raise SchemaError(f"{name}: no benchmark {benchmark!r} in benchmarks/schema.py")
    return SCHEMAS[benchmark]


def check_result(name: str, result: object) -> None:
    """SchemaError unless ``result`` is a Result of the data type of benchmark ``name``."""
    conform(result, Result, name)
    assert isinstance(result, dict)
    conform(result["data"], schema(name), f"{name}: data")


def conform(value: object, kind: Any, where: str) -> None:
    """SchemaError unless ``value`` (parsed JSON) has type ``kind``: a TypedDict, list, dict, union or scalar."""
    origin = get_origin(kind)
    if isinstance(kind, TypeVar) or kind is Any:
        return
    if is_typeddict(kind) or is_typeddict(origin):
        typed = origin or kind
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: an object expected, got {value!r}")
        missing = sorted(typed.__required_keys__ - value.keys())
        unknown = sorted(value.keys() - typed.__required_keys__ - typed.__optional_keys__)
        if missing or unknown:
            raise SchemaError(f"{where}: " + "; ".join([*(f"no {key!r}" for key in missing),
                                                        *(f"unknown key {key!r}" for key in unknown)]))
        for key, hint in get_type_hints(typed).items():
            if key in value:
                conform(value[key], hint, f"{where}.{key}")
    elif origin in (types.UnionType, Union):
        for option in get_args(kind):
            try:
                conform(value, option, where)
                return
            except SchemaError:
                continue
        raise SchemaError(f"{where}: {value!r} is none of {kind}")
    elif origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: a list expected, got {value!r}")
        for index, item in enumerate(value):
            conform(item, get_args(kind)[0], f"{where}[{index}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: an object expected, got {value!r}")
        for key, item in value.items():
            conform(item, get_args(kind)[1], f"{where}.{key}")
    elif not _scalar(value, kind):
        raise SchemaError(f"{where}: {kind.__name__ if isinstance(kind, type) else kind} expected, got {value!r}")


def _scalar(value: object, kind: object) -> bool:
    if kind is type(None):
        return value is None
    if kind is float:  # JSON writes whole numbers without a point
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)
