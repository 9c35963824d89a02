"""The parameter table (vsrife/parameters.py) is the one source of the filters' parameters: what is generated from
it is current, and what reads it (the plugin, the engine, the command line, the .vpy) agrees with it."""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import vapoursynth as vs

from vsrife import cli, codegen, parameters, rules, stubgen
from vsrife.devices import select_device
from vsrife.engine import check_arguments, create_engine
from vsrife.errors import CliError, EngineError
from vsrife.parameters import PARAMETERS, Cli, Parameter, ParameterError, Range, ScriptArgument, Value
from vsrife.precision import PRECISIONS, select_precision
from vsrife.script import GraphSpec, script_text


def _blank(length: int = 10) -> vs.VideoNode:
    return vs.core.std.BlankClip(format=vs.RGBS, width=64, height=48, length=length, fpsnum=25, fpsden=1)


# ---------------------------------------------------------------------------------------------- generated files


@pytest.mark.parametrize("path", list(codegen.outputs()), ids=lambda path: path.name)
def test_generated_files_are_current(path: Path) -> None:
    assert path.read_text() == codegen.outputs()[path](path.read_text()), (
        f"{path} is stale: run python -m vsrife.codegen (and pip install -e . for the plugin)")


def test_readme_has_every_generated_block() -> None:
    text = codegen.README.read_text()
    for name in codegen.readme_blocks():
        assert f"<!-- generated: {name} -->" in text and f"<!-- /generated: {name} -->" in text, name


# ---------------------------------------------------------------------------------------------- the plugin


@pytest.mark.parametrize("name", list(parameters.FUNCTIONS))
def test_plugin_functions_are_the_table(name: str) -> None:
    """The installed plugin was built from the current header: same functions, argument and return strings."""
    assert sorted(f.name for f in vs.core.vfi.functions()) == sorted(parameters.FUNCTIONS)
    function, described = getattr(vs.core.vfi, name), parameters.FUNCTIONS[name]
    assert function.signature == described.signature()
    assert function.return_signature == described.return_signature()
    plugin = vs.core.vfi
    assert (plugin.identifier, plugin.namespace, plugin.name) == (parameters.PLUGIN_ID, parameters.NAMESPACE,
                                                                  parameters.PLUGIN_NAME)


def _refused_values(parameter: Parameter) -> list[float]:
    """Values just outside what the parameter allows (and NaN for floats)."""
    candidates: list[float] = []
    for allowed in parameter.allowed:
        if isinstance(allowed, Value):
            candidates += [allowed.value - 0.5, allowed.value + 3]
        else:
            candidates += [v for v in (None if allowed.low is None else allowed.low - 1,
                                       None if allowed.high is None else allowed.high + 1,
                                       allowed.low if allowed.low_open else None,
                                       allowed.high if allowed.high_open else None) if v is not None]
    if parameter.type == "int":
        candidates = [float(math.floor(c)) for c in candidates]
    else:
        candidates.append(math.nan)
    refused = [c for c in candidates if not parameter.admits(c)]
    assert refused, parameter.name
    return refused


CHECKED = [(function, parameter) for function in parameters.FILTERS for parameter in PARAMETERS.values()
           if parameter.allowed and function in parameter.functions]


@pytest.mark.parametrize(("function", "parameter"), CHECKED, ids=[f"{f}-{p.name}" for f, p in CHECKED])
def test_plugin_refuses_with_the_tables_words(function: str, parameter: Parameter) -> None:
    for value in _refused_values(parameter):
        given = int(value) if parameter.type == "int" else value
        with pytest.raises(vs.Error) as caught:
            getattr(vs.core.vfi, function)(_blank(), **{parameter.name: given})
        assert str(caught.value) == f"vfi.{function}: {parameters.refusal(parameter.name, given)}"


@pytest.mark.parametrize("parameter", [p for p in PARAMETERS.values() if p.allowed], ids=lambda p: p.name)
def test_plugin_takes_every_value_the_table_allows(parameter: Parameter) -> None:
    """Every allowed value (and each range's ends) passes the plugin's checks: vfi.Rate checks the rate, the
    filters the rest (an engine error, past the checks, shows they passed: the model cannot be found)."""
    values = [a.value for a in parameter.allowed if isinstance(a, Value)]
    values += [end for a in parameter.allowed if isinstance(a, Range)
               for end, open_end in ((a.low, a.low_open), (a.high, a.high_open)) if end is not None and not open_end]
    for value in values:
        given = int(value) if parameter.type == "int" else value
        if "Rate" in parameter.functions:
            assert vs.core.vfi.Rate(_blank(), **{parameter.name: given})["frames"] == 10 * given
            continue
        function = next(f for f in parameters.FILTERS if f in parameter.functions)
        extra = {"tile_overlap": 0} if parameter.name == "tile" else {}
        with pytest.raises(vs.Error, match="unknown model 'no such model'"):
            getattr(vs.core.vfi, function)(_blank(), model="no such model", **{parameter.name: given}, **extra)


def test_rate_answers_the_filters_length_and_rate() -> None:
    clip = _blank(7)
    answer = vs.core.vfi.Rate(clip, factor_num=5, factor_den=2)
    assert set(answer) == {key for key, _ in parameters.FUNCTIONS[parameters.RATE].returns}
    assert answer == {"num": 5, "den": 2, "frames": 17, "fps_num": 125, "fps_den": 2}
    with pytest.raises(vs.Error, match=r"^vfi\.Rate: give only one of multi"):
        vs.core.vfi.Rate(clip, multi=2, fps_num=50, fps_den=1)


# ---------------------------------------------------------------------------------------------- the engine


def test_create_engine_takes_the_engine_rows() -> None:
    keywords = [name for name, p in inspect.signature(create_engine).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    # what the plugin adds: not filter parameters (the mask clip reaches the engine as its sample type and peak)
    own = set(parameters.ENGINE_INPUTS)
    assert own <= set(keywords)
    assert sorted(k for k in keywords if k not in own) == sorted(p.name for p in parameters.engine_parameters())
    for name in (p.name for p in parameters.engine_parameters()):  # None: the table's default
        assert inspect.signature(create_engine).parameters[name].default is None, name


def test_the_engine_takes_the_words_of_the_text_rows() -> None:
    precision, device = PARAMETERS["precision"].choices, PARAMETERS["device"].choices
    assert precision is not None and device is not None
    assert precision.words == ("auto", *PRECISIONS)
    with pytest.raises(EngineError, match=r"^precision 'fp8' is not supported; choose auto, fp32, fp16 or bf16$"):
        select_precision("fp8", select_device("cpu"))
    assert device.words[:2] == ("auto", "cpu") and select_device("CPU").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# (tile, tile_overlap) pairs that break the rule between them
TILE_OVERLAP_BREAKS = [(128, 64), (64, 2**62), (100, 50)]


@pytest.mark.parametrize(("tile", "overlap"), TILE_OVERLAP_BREAKS)
def test_the_plugin_and_the_engine_refuse_tile_overlap_with_one_message(tile: int, overlap: int) -> None:
    """One function (vsrife.rules.tile_overlap) decides, whoever asks: the plugin's words are the engine's."""
    with pytest.raises(ParameterError) as from_the_rule:
        rules.tile_overlap(tile, overlap)
    with pytest.raises(ParameterError) as from_the_engine:
        create_engine(method="rife", width=64, height=48, sample_type="float32", tile=tile, tile_overlap=overlap)
    for function in parameters.FILTERS:
        with pytest.raises(vs.Error) as from_the_plugin:
            getattr(vs.core.vfi, function)(_blank(), tile=tile, tile_overlap=overlap)
        assert str(from_the_plugin.value) == f"vfi.{function}: {from_the_engine.value}"
    assert str(from_the_engine.value) == str(from_the_rule.value) == (
        f"tile_overlap must be less than tile/2 (got tile_overlap={overlap} with tile={tile})")


def test_tile_overlap_defaults_to_a_quarter_of_small_tiles() -> None:
    default = PARAMETERS["tile_overlap"].default
    assert rules.tile_overlap(0, None) == default and rules.tile_overlap(1024, None) == default
    assert rules.tile_overlap(128, None) == 32 and rules.tile_overlap(128, 63) == 63


@pytest.mark.parametrize("parameter", [p for p in parameters.engine_parameters() if p.allowed], ids=lambda p: p.name)
def test_engine_refuses_with_the_plugins_words(parameter: Parameter) -> None:
    for value in _refused_values(parameter):
        with pytest.raises(EngineError) as caught:
            check_arguments(**{parameter.name: value})
        assert str(caught.value) == parameters.refusal(parameter.name, value)


# ---------------------------------------------------------------------------------------------- command line


def test_every_parameter_has_a_command_line_option() -> None:
    """Each parameter but the input clip has its own option, or is set with the row it is given together with."""
    for parameter in list(PARAMETERS.values())[1:]:
        assert parameter.flag.startswith("--"), parameter.name
    help_text = cli.build_parser().parse_args(["script", "in.mkv"])  # parses: every option is registered
    assert help_text.method == "rife"


def test_command_line_options_reach_the_filter_and_the_script(tmp_path: Path) -> None:
    mask = tmp_path / "mask.png"
    mask.write_bytes(b"")
    args = cli.build_parser().parse_args([
        "script", "in.mkv", "--factor", "5/2", "--scale", "auto", "--ensemble", "--sc", "--sc-threshold", "0.2",
        "--tile", "128", "--tile-overlap", "16", "--model", "4.0", "--model-path", "w.pkl", "--device", "cpu",
        "--precision", "fp32", "--dedup", "--dedup-threshold", "0.01", "--dedup-max", "3", "--mask", str(mask)])
    given = cli._filter_args(args)
    assert given == {"model": "4.0", "model_path": "w.pkl", "scale": 0.0, "ensemble": 1, "sc": 1,
                     "sc_threshold": 0.2, "device": "cpu", "precision": "fp32", "tile": 128, "tile_overlap": 16,
                     "dedup": 1, "dedup_threshold": 0.01, "dedup_max": 3, "mask": str(mask.resolve())}
    rrin_only = {"levels"}
    assert set(given) | {"clip"} | {p.name for p in PARAMETERS.values() if p.group == "rate"} | rrin_only \
        == set(PARAMETERS)
    rrin_args = cli.build_parser().parse_args(["script", "in.mkv", "--method", "rrin", "--levels", "3"])
    assert cli._filter_args(rrin_args) == {"levels": 3}
    rrin_spec = GraphSpec(input=Path("in.mkv"), method="rrin", rate={"multi": 2}, factor=Fraction(2),
                          filter_args=cli._filter_args(rrin_args))
    assert "clip = core.vfi.RRIN(source, multi=2, levels=3)" in script_text(rrin_spec).splitlines()
    spec = GraphSpec(input=Path("in.mkv"), method="rife", rate={"factor_num": 5, "factor_den": 2},
                     factor=args.factor_num, filter_args=given)
    lines = script_text(spec).splitlines()
    call = next(line for line in lines if line.startswith("clip = core.vfi.RIFE("))
    assert call == ("clip = core.vfi.RIFE(source, factor_num=5, factor_den=2, model='4.0', model_path='w.pkl', "
                    "scale=0.0, ensemble=1, sc=1, sc_threshold=0.2, device='cpu', precision='fp32', tile=128, "
                    "tile_overlap=16, dedup=1, dedup_threshold=0.01, dedup_max=3, mask=mask)")
    assert "from vsrife.frames import open_mask" in lines
    assert any(line.startswith(f"mask = open_mask({str(mask.resolve())!r})") for line in lines), lines


def test_a_missing_mask_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["script", "in.mkv", "--mask", str(tmp_path / "none.png")])
    error = capsys.readouterr().err
    assert "--mask" in error and "none.png: no such file" in error, error


def test_an_option_the_filter_does_not_take_is_refused_by_name() -> None:
    args = cli.build_parser().parse_args(["script", "in.mkv", "--method", "rrin", "--ensemble"])
    with pytest.raises(CliError, match=r"^--ensemble is a RIFE option; RRIN has none$"):
        cli._filter_args(args)


# ---------------------------------------------------------------------------------------------- one row


def _clip_from_file(name: str, value: object) -> ScriptArgument:
    return ScriptArgument(name, (f"{name} = core.bs.VideoSource({str(value)!r})",))


NEW_ROWS = (
    Parameter("strength", "float", "how strongly to apply it", default=0.5, engine=True,
              allowed=(Range(0.0, 1.0),)),
    Parameter("guide", "clip", "a clip that guides the filter", functions=("RIFE",),
              cli=Cli(metavar="FILE", to_script=_clip_from_file)),
)


@pytest.fixture
def extended_table(monkeypatch: pytest.MonkeyPatch) -> tuple[Parameter, ...]:
    """The table with a number and a clip parameter added at its end, as the next parameters would be."""
    table = (*parameters._TABLE, *NEW_ROWS)
    monkeypatch.setattr(parameters, "_TABLE", table)
    monkeypatch.setattr(parameters, "PARAMETERS", {p.name: p for p in table})
    return table


@pytest.mark.usefixtures("extended_table")
def test_one_row_reaches_every_generated_place() -> None:
    rife = parameters.FUNCTIONS["RIFE"]
    assert rife.signature().endswith("mask:vnode:opt;strength:float:opt;guide:vnode:opt;")  # levels: RRIN only
    assert parameters.FUNCTIONS["RRIN"].signature().endswith("mask:vnode:opt;levels:int:opt;strength:float:opt;")
    header = codegen.plugin_header()
    assert ('{name::kStrength, Type::Float, true, 0.5, "", kStrengthAllowed, 1, "must be >= 0 and <= 1", "", true}'
            in header)
    assert '{name::kGuide, Type::Clip, false, 0.0, "", nullptr, 0, "", "", false}' in header
    assert 'constexpr const char *kStrength = "strength";' in header and "    name::kStrength,\n};" in header
    api = codegen.api_module()
    # where the generator wraps the signature depends on the rows before: compare with single spaces
    assert "strength: float | None = None, guide: vs.VideoNode | None = None) -> vs.VideoNode:" in " ".join(api.split())
    assert "guide: a clip that guides the filter" in api
    stub = codegen.stub()
    assert "strength: _FloatLike | None = None, guide: VideoNode | None = None) -> VideoNode: ..." in stub
    readme = "\n".join(codegen.readme_blocks()["RIFE"] + codegen.readme_blocks()["command line"])
    assert "float strength=0.5" in readme and "clip guide])" in readme
    assert "| `guide` | | a clip that guides the filter |" in readme
    assert "| `--guide FILE` | `guide` (RIFE only) | a clip that guides the filter |" in readme
    assert parameters.refusal("strength", 1.5) == "strength must be >= 0 and <= 1 (got 1.5)"
    args = cli.build_parser().parse_args(["script", "in.mkv", "--strength", "0.25", "--guide", "mask.png"])
    given = cli._filter_args(args)
    assert given["strength"] == 0.25 and given["guide"] == "mask.png"
    spec = GraphSpec(input=Path("in.mkv"), method="rife", rate={"multi": 2}, factor=Fraction(2), filter_args=given)
    lines = script_text(spec).splitlines()
    call = next(line for line in lines if line.startswith("clip = core.vfi.RIFE("))
    assert "guide = core.bs.VideoSource('mask.png')" in lines[: lines.index(call)]
    assert call.endswith("strength=0.25, guide=guide)")


def test_rule_words() -> None:
    assert PARAMETERS["scale"].rule() == "must be 0 (automatic, from the frame size) or one of 0.25, 0.5, 1, 2, 4"
    assert PARAMETERS["tile"].rule() == "must be 0 (automatic) or a tile size of at least 64 pixels"
    assert replace(PARAMETERS["sc"], allowed=(Value(0), Value(1), Value(2))).rule() == "must be one of 0, 1, 2"
    assert Range(0.0, 1.0, low_open=True).describe() == "> 0 and <= 1"
    assert parameters.parse_auto_or_number(" Auto ") == 0.0 and parameters.parse_fraction("5/2") == 2.5
    with pytest.raises(ValueError, match="not positive"):
        parameters.parse_fraction("0")
    assert stubgen.parse_signature(parameters.FUNCTIONS["Rate"].return_signature())[0].name == "num"
