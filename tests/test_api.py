"""The typed Python API (vsrife.RIFE, vsrife.RRIN) and the shipped core.vfi stub, against the installed plugin."""

from __future__ import annotations

import ast
import importlib.resources
import inspect
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest
import vapoursynth as vs

from conftest import ROOT, clip_from_frames, frame_array
from vsrife import api, codegen, stubgen
from vsrife.parameters import PARAMETERS
from vsrife.registry import MODELS
from vsrife.weights import resolve_weight_files

FILTER_NAMES = ("RIFE", "RRIN")

# The Python type each VapourSynth argument type has in vsrife.api; data arguments named *_path are paths.
API_TYPES: dict[str, object] = {"int": int | None, "float": float | None, "data": str | None,
                               "vnode": vs.VideoNode | None}


def _moving_clip(count: int = 3, width: int = 64, height: int = 64) -> vs.VideoNode:
    """An RGBS clip (BlankClip + ModifyFrame) of a smooth pattern moving 3 pixels right per frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.stack([
        np.stack([0.5 + 0.4 * np.sin((x - 3 * n) / (5 + c)) * np.cos(y / (7 - c)) for c in range(3)], axis=-1)
        for n in range(count)
    ]).astype(np.float32)
    return clip_from_frames(np.ascontiguousarray(frames))


def _frames(clip: vs.VideoNode) -> list[np.ndarray]:
    return [frame_array(clip.get_frame(n)) for n in range(clip.num_frames)]


def _assert_same_clip(typed: vs.VideoNode, direct: vs.VideoNode) -> None:
    assert (typed.num_frames, typed.fps, typed.format.id) == (direct.num_frames, direct.fps, direct.format.id)
    for n, (a, b) in enumerate(zip(_frames(typed), _frames(direct), strict=True)):
        assert np.array_equal(a, b), f"frame {n} differs by up to {np.abs(a - b).max()}"


@pytest.fixture(scope="module")
def flownet_40() -> Path:
    """The real RIFE 4.0 weight file, from the verified cache (fetched there if missing)."""
    return resolve_weight_files(MODELS["4.0"], None, progress=False)["flownet"]


# ---------------------------------------------------------------------------------------------- import


def test_import_vsrife_does_not_import_vapoursynth() -> None:
    code = ("import sys, vsrife\n"
            "assert 'vapoursynth' not in sys.modules, 'import vsrife imported vapoursynth'\n"
            "from vsrife import api\n"
            "assert vsrife.RIFE is api.RIFE and vsrife.RRIN is api.RRIN\n"
            "assert 'vapoursynth' in sys.modules\n"
            "print(sorted(vsrife.__all__))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['RIFE', 'RRIN', '__version__']"


def test_unknown_attribute_is_an_attribute_error() -> None:
    import vsrife

    with pytest.raises(AttributeError, match="module 'vsrife' has no attribute 'RIFE2'"):
        vsrife.RIFE2  # noqa: B018


# ---------------------------------------------------------------------------------------------- parameters


def test_parse_signature() -> None:
    parsed = stubgen.parse_signature("clip:vnode:all;multi:int:opt;model:data:opt;weights:float[]:opt:empty;any")
    assert parsed == [stubgen.Argument("clip", "vnode", False), stubgen.Argument("multi", "int", True),
                      stubgen.Argument("model", "data", True), stubgen.Argument("weights", "float[]", True),
                      stubgen.Argument("any", "any", True)]


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_api_parameters_equal_the_plugin(name: str) -> None:
    plugin_arguments = stubgen.parse_signature(getattr(vs.core.vfi, name).signature)
    function = getattr(api, name)
    parameters = inspect.signature(function).parameters
    assert list(parameters) == [a.name for a in plugin_arguments]
    hints = typing.get_type_hints(function)
    assert hints["return"] is vs.VideoNode
    clip, *optional = plugin_arguments
    assert (clip.type, clip.optional, hints["clip"]) == ("vnode", False, vs.VideoNode)
    assert parameters["clip"].default is inspect.Parameter.empty
    for argument in optional:
        expected = api.PathArgument | None if argument.name.endswith("_path") else API_TYPES[argument.type]
        if PARAMETERS[argument.name].choices is not None:  # the table's words: Literal[...]
            expected = getattr(api, codegen.choice_alias(PARAMETERS[argument.name])) | None
        assert argument.optional and parameters[argument.name].default is None, argument
        assert hints[argument.name] == expected, argument


def test_api_docstrings_name_every_defaulted_parameter() -> None:
    for name in FILTER_NAMES:
        doc = inspect.getdoc(getattr(api, name)) or ""
        assert f"core.vfi.{name}" in doc and "README.md" in doc
        for argument in stubgen.parse_signature(getattr(vs.core.vfi, name).signature)[1:]:
            assert argument.name in doc, (name, argument.name)


def test_plugin_arguments_drop_only_none_and_convert_paths() -> None:
    given = {"multi": None, "sc": 0, "tile_overlap": 0, "model": "", "model_path": Path("/weights/f.pkl"),
             "device": None}
    assert api.plugin_arguments(given) == {"sc": 0, "tile_overlap": 0, "model": "",
                                           "model_path": "/weights/f.pkl"}


# ---------------------------------------------------------------------------------------------- output


class _RateArguments(TypedDict, total=False):
    multi: int
    factor_num: int
    factor_den: int
    ensemble: int
    scale: float


@pytest.mark.parametrize("args", [
    _RateArguments(multi=3),
    _RateArguments(factor_num=5, factor_den=2, ensemble=1, scale=0.5),
], ids=["multi3", "factor5/2-ensemble-scale0.5"])
def test_typed_rife_equals_the_plugin(args: _RateArguments, flownet_40: Path) -> None:
    clip = _moving_clip()
    typed = api.RIFE(clip, device="cpu", precision="fp32", model_path=flownet_40, **args)
    direct = vs.core.vfi.RIFE(clip, device="cpu", precision="fp32", model_path=str(flownet_40), **args)
    _assert_same_clip(typed, direct)
    synthesized = frame_array(typed.get_frame(1))
    assert min(np.abs(synthesized - frame_array(clip.get_frame(k))).max() for k in (0, 1)) > 0.01


def test_typed_rife_forwards_zero(flownet_40: Path) -> None:
    """tile_overlap=0 is an argument, not an absent one: the tiles then meet without blending."""
    clip = _moving_clip(width=128)
    common = {"device": "cpu", "precision": "fp32", "model_path": str(flownet_40), "tile": 64}
    typed = api.RIFE(clip, tile_overlap=0, device="cpu", precision="fp32", model_path=flownet_40, tile=64)
    _assert_same_clip(typed, vs.core.vfi.RIFE(clip, tile_overlap=0, **common))
    default_overlap = vs.core.vfi.RIFE(clip, **common)
    assert not np.array_equal(frame_array(typed.get_frame(1)), frame_array(default_overlap.get_frame(1)))


def test_typed_rife_with_every_argument_none_keeps_the_plugin_defaults() -> None:
    clip = _moving_clip()
    names = [a.name for a in stubgen.parse_signature(vs.core.vfi.RIFE.signature)[1:] if a.name != "device"]
    typed = api.RIFE(clip, device="cpu", **dict.fromkeys(names))
    direct = vs.core.vfi.RIFE(clip, device="cpu")
    assert typed.num_frames == 2 * clip.num_frames and typed.fps == 2 * clip.fps
    _assert_same_clip(typed, direct)


def test_typed_rrin_equals_the_plugin(rrin_weights: Path) -> None:
    clip = _moving_clip()
    _assert_same_clip(api.RRIN(clip, model="rrin", model_path=rrin_weights, multi=2, device="cpu", precision="fp32",
                               sc=0),
                      vs.core.vfi.RRIN(clip, model="rrin", model_path=str(rrin_weights), multi=2, device="cpu",
                                       precision="fp32", sc=0))


def test_typed_errors_are_the_plugin_errors() -> None:
    with pytest.raises(vs.Error, match=r"^vfi\.RIFE: .*multi"):
        api.RIFE(_moving_clip(), multi=1)
    with pytest.raises(TypeError, match="scale"):
        api.RRIN(_moving_clip(), scale=0.5)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------------------------- stubs


def _shipped_stub() -> str:
    return importlib.resources.files("vsrife").joinpath("stubs/vfi.pyi").read_text()


def test_shipped_stub_is_what_the_installed_plugin_generates() -> None:
    assert _shipped_stub() == stubgen.stub_text(), "stale stub: run python -m vsrife.codegen (and pip install -e .)"


def _class(body: list[ast.stmt], name: str) -> ast.ClassDef:
    return next(node for node in body if isinstance(node, ast.ClassDef) and node.name == name)


@pytest.mark.parametrize("holder", ["Core", "VideoNode"])
def test_stub_methods_match_the_plugin(holder: str) -> None:
    """Read back from the stub's syntax tree: one method per function, the plugin's argument names in order; the
    filters return a clip, vfi.Rate a dict of ints."""
    module = ast.parse(_shipped_stub())
    plugin_class = _class(_class(_class(module.body, "_vfi").body, f"_{holder}_bound").body, "Plugin")
    methods = {node.name: node for node in plugin_class.body if isinstance(node, ast.FunctionDef)}
    assert sorted(methods) == sorted(f.name for f in vs.core.vfi.functions())
    for name, method in methods.items():
        arguments = stubgen.parse_signature(getattr(vs.core.vfi, name).signature)
        bound = arguments[1:] if holder == "VideoNode" else arguments
        assert [a.arg for a in method.args.posonlyargs] == ["self"]
        assert [a.arg for a in method.args.args] == [a.name for a in bound]
        assert [ast.unparse(d) for d in method.decorator_list] == ["_Wrapper.Function"]
        returns_clip = getattr(vs.core.vfi, name).return_signature == "clip:vnode;"
        assert method.returns is not None
        assert ast.unparse(method.returns) == ("VideoNode" if returns_clip else "dict[str, int]")
    attribute = _class(module.body, f"_{holder}Attributes").body[0]
    assert ast.unparse(attribute) == f"vfi: Final[_vfi._{holder}_bound.Plugin]"


def test_stub_marks_the_blocks_as_vsstubs_does() -> None:
    text = _shipped_stub()
    for start, end in [("# <plugins/implementations>", "# </plugins/implementations>"),
                       ("# <implementation/vfi>", "# </implementation/vfi>"),
                       ("# <plugins/bound/Core>", "# </plugins/bound/Core>"),
                       ("# <attribute/Core_bound/vfi>", "# </attribute/Core_bound/vfi>"),
                       ("# <plugins/bound/VideoNode>", "# </plugins/bound/VideoNode>"),
                       ("# <attribute/VideoNode_bound/vfi>", "# </attribute/VideoNode_bound/vfi>")]:
        assert text.count(start) == text.count(end) == 1 and text.index(start) < text.index(end), start
    assert f'"""{vs.core.vfi.name}"""' in text


def test_stub_generator_refuses_types_it_cannot_write() -> None:
    """A plugin with argument types the vfi filters do not use (std: float[], func, ...) is refused, by name."""
    with pytest.raises(ValueError, match=r"^std\.AddBorders: argument color has type float\[\], which vsrife\.stubgen "
                                         r"cannot write$"):
        stubgen.stub_text(vs.core.std)


def test_package_data_ships_the_marker_and_the_stub() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vsrife"]
    shipped = {path.relative_to(ROOT / "vsrife").as_posix() for pattern in patterns
               for path in (ROOT / "vsrife").glob(pattern)}
    assert {"py.typed", "stubs/vfi.pyi"} <= shipped
    assert "data/*.pth" in patterns
