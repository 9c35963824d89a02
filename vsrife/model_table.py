"""README.md's table of the models, from the registry and the nets (``python -m vsrife.codegen`` writes it between
``<!-- models -->`` markers; tests/test_parameters.py fails while it is stale).

One row per family (registry.FAMILIES): the filter that runs it, its models in the registry's order, the network,
and what the nets say of themselves (models.traits: padding, ensemble) and where their weights come from. A model
added to the registry appears here without an edit.
"""

from __future__ import annotations

from collections.abc import Callable

from .registry import FAMILIES, METHODS, MODELS, ModelEntry, PackageSource, UrlSource, WheelSource


def weights_source(entry: ModelEntry) -> str:
    """Where the weight files of ``entry`` come from, in a few words."""
    if entry.model_path_only:
        return "yours, as `model_path`"
    if not entry.released:
        return "ours, not released yet"
    sources = {type(source) for weight in entry.files for source in weight.sources}
    if sources == {WheelSource}:
        wheels = sorted({s.requirement for w in entry.files for s in w.sources if isinstance(s, WheelSource)})
        size = f"{entry.total_size / 1e6:.0f} MB, " if entry.total_size is not None else ""
        return f"{size}{', '.join(f'`{wheel}`' for wheel in wheels)} wheel"
    if sources == {UrlSource}:
        return "vs-rife's release (trusted on first use)"
    if sources == {PackageSource}:
        return "shipped in the package"
    return ", ".join(sorted(source.__name__ for source in sources))


def _grouped(entries: list[ModelEntry], value: Callable[[ModelEntry], str]) -> str:
    """``value`` of the entries: the one value when they agree, else each value after the models that have it."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        groups.setdefault(value(entry), []).append(entry.name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items())


def models_table() -> list[str]:
    """The lines of the table."""
    lines = ["| family | filter | models | network | padding | `ensemble` | weights |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for family, network in FAMILIES.items():
        entries = [entry for entry in MODELS.values() if entry.family == family]
        filters = sorted({f"`vfi.{METHODS[entry.method].filter}`" for entry in entries})
        names = [f"`{entry.name}`" + (" (default)" if entry.name == METHODS[entry.method].default_model else "")
                 for entry in entries]
        cells = [family, ", ".join(filters), ", ".join(names), network,
                 _grouped(entries, lambda entry: str(entry.padding)),
                 _grouped(entries, lambda entry: "yes" if entry.ensemble else "no"),
                 _grouped(entries, weights_source)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
