"""A model family: its classes, its named architectures and its published weights (timm-style).

Each family package (:mod:`redimnet.models.redimnet`, :mod:`redimnet.models.redimnet2`) makes one
:class:`Family`, registers it with :func:`register_family`, and adds its architectures
(:meth:`Family.add_architecture`) and weights (:meth:`Family.add_weights`) to it.  Everything that
needs to know about families reads these registrations: :mod:`redimnet.models.families` (which
family a checkpoint or a network belongs to) and :mod:`redimnet.hub` (names, downloads).

Two kinds of entries, after the torchvision ``Weights`` / timm ``arch.tag`` pattern:

* :class:`Architecture` -- a named network (``"b0"`` ... ``"b6"``, ``"M"``, ``"S"``,
  ``"redimnet2-b2"``): its configuration (where it is known without a weights file), the
  parameter count and GMACs measured on it (stored, so nothing has to be built to show them) and
  the numbers the paper reports.
* :class:`Weights` -- one published file of an architecture, named
  ``"<arch>.<dataset>-<train_type>"`` (e.g. ``"b2.vox2-ft_lm"``): file name, URL, SHA-256 and size
  where known, licence, training data and type, and the published EERs.

Nothing here imports PyTorch: a family's classes are loaded on first use (``parts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from ...errors import UnknownModelError

MIT = "MIT"
CC_BY_NC_SA = "CC BY-NC-SA 4.0"


class FamilyParts(NamedTuple):
    """The classes of a family, loaded when first needed."""

    config_class: Any
    """The configuration class (a :class:`~redimnet.models.common.config.ReleaseConfig` dataclass)."""
    network_class: Any
    """The trainable network; built from a configuration, its ``config`` compares equal to it."""
    original_names: Callable[[Iterable[str], Any], Dict[str, str]]
    """``original_names(keys, config)``: ``{our state-dict key: the official checkpoint's name}``."""


class Family:
    """One model family and its registrations.

    Args:
        name: the family's name (``"redimnet"``); the architectures' and configurations' ``family``.
        description: one line for people.
        parts: loads the family's classes (see :class:`FamilyParts`); called once, on first use.
        marks: whether a release file's ``model_config`` dict carries this family's marks (options
            or value shapes only it has); None for the family of files that carry no family's marks
            (ReDimNet, the original release format).
        release_url: where the family's weights are published (the default ``base_url`` of its weights).
        cache_prefix: put before a published file's name in the weights cache; None: ``"<name>-"``
            (families publish files of the same name, e.g. ``b2-vox2-ptn.pt``).
    """

    def __init__(
        self,
        name: str,
        description: str,
        parts: Callable[[], FamilyParts],
        marks: Optional[Callable[[Any], bool]] = None,
        release_url: str = "",
        cache_prefix: Optional[str] = None,
    ):
        self.name = name
        self.description = description
        self._load_parts = parts
        self._parts: Optional[FamilyParts] = None
        self.marks = marks
        self.release_url = release_url
        self.cache_prefix = f"{name}-" if cache_prefix is None else cache_prefix
        self.architectures: Dict[str, Architecture] = {}
        self.weights: Dict[str, Weights] = {}

    def __repr__(self) -> str:
        return f"Family({self.name!r})"

    # ------------------------------------------------------------ the classes
    @property
    def parts(self) -> FamilyParts:
        if self._parts is None:
            self._parts = self._load_parts()
        return self._parts

    @property
    def config_class(self) -> Any:
        return self.parts.config_class

    @property
    def network_class(self) -> Any:
        return self.parts.network_class

    def make_config(self, options: Mapping[str, Any]):
        """A configuration from a ``model_config`` dict (checked; :class:`~redimnet.errors.ConfigError`)."""
        return self.config_class.from_dict(options)

    def build(self, config):
        """A randomly initialised network of ``config``."""
        return self.network_class(config)

    def original_names(self, keys: Iterable[str], config) -> Dict[str, str]:
        """``{our state-dict key: the official name}`` for a network of ``config``."""
        return self.parts.original_names(keys, config)

    def recognises(self, model_config: Any) -> bool:
        """Whether a release file's ``model_config`` carries this family's marks."""
        return self.marks is not None and bool(self.marks(model_config))

    # ------------------------------------------------------------ registrations
    def add_architecture(self, name: str, options: Optional[Mapping[str, Any]] = None, **facts) -> "Architecture":
        """Add a named architecture; names are unique across families, case-insensitively.

        ``facts`` are the other fields of :class:`Architecture` (measured and published numbers, notes).
        """
        taken = {n.lower() for family in [self, *_FAMILIES.values()] for n in family.architectures}
        if "." in name or name.lower() in taken:
            raise ValueError(f"architecture name {name!r} is taken or contains '.'")
        arch = Architecture(name, self.name, options, **facts)
        self.architectures[name] = arch
        return arch

    def add_weights(self, arch: str, dataset: str, train_type: str, license: str, **facts) -> "Weights":
        """Add a published weight file of one of this family's architectures (the first added for an
        architecture is its default); ``facts`` are the other fields of :class:`Weights`."""
        if arch not in self.architectures:
            raise ValueError(f"register the architecture {arch!r} before its weights {arch}.{dataset}-{train_type}")
        weights = Weights(arch, dataset, train_type, license, **{"base_url": self.release_url, **facts})
        if weights.name in self.weights:
            raise ValueError(f"weights {weights.name!r} are already registered")
        self.weights[weights.name] = weights
        return weights

    def weights_of(self, arch: str) -> List["Weights"]:
        """The published weights of one architecture, default first."""
        return [weights for weights in self.weights.values() if weights.arch == arch]


# ---------------------------------------------------------------------------
# the families
# ---------------------------------------------------------------------------

_FAMILIES: Dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` known (to :mod:`redimnet.models.families` and :mod:`redimnet.hub`)."""
    known = _FAMILIES.get(family.name)
    if known is not None and known is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    others = {n.lower() for other in _FAMILIES.values() if other is not family for n in other.architectures}
    clashes = [name for name in family.architectures if name.lower() in others]
    if clashes:
        raise ValueError(f"architecture name {clashes[0]!r} is taken or contains '.'")
    _FAMILIES[family.name] = family
    return family


def registered_families() -> List[Family]:
    """Every registered family, in registration order."""
    return list(_FAMILIES.values())


def get_family(name: str) -> Family:
    """The registered family called ``name`` (:class:`~redimnet.errors.UnknownModelError` if none)."""
    if name not in _FAMILIES:
        raise UnknownModelError(f"unknown model family {name!r}; known: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """A named network with its measured and published numbers.

    * ``family``: the name of the family it belongs to.
    * ``options``: the configuration as a ``model_config`` dict, or None when
      the architecture is published only inside its weight files (M, S).
    * ``parameters`` / ``macs_2s``: parameter count and multiply-accumulates
      for 2 s of audio, measured on this project's implementation and stored.
    * ``paper_params_m``, ``paper_gmacs``: the paper's figures.
    * ``paper_eer`` / ``paper_eer_asnorm``: Vox1-O / Vox1-E / Vox1-H EER (%)
      of the large-margin fine-tuned model without / with AS-Norm.
    """

    name: str
    family: str = "redimnet"
    options: Optional[Mapping[str, Any]] = None
    parameters: Optional[int] = None
    macs_2s: Optional[int] = None
    paper_params_m: Optional[float] = None
    paper_gmacs: Optional[float] = None
    paper_eer: Optional[Tuple[float, float, float]] = None
    paper_eer_asnorm: Optional[Tuple[float, float, float]] = None
    notes: str = ""
    _cache: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def buildable(self) -> bool:
        """Whether the configuration is known without a weights file."""
        return self.options is not None

    @property
    def config(self):
        """The family's configuration object; raises :class:`UnknownModelError` for M/S-like entries."""
        if self.options is None:
            names = [weights.name for weights in get_family(self.family).weights_of(self.name)]
            raise UnknownModelError(
                f"the architecture of {self.name!r} is published only inside its weight files "
                f"({', '.join(names)}); load one of them, e.g. redimnet.load({names[0]!r})"
                if names
                else f"the architecture of {self.name!r} is published only inside its weight files"
            )
        if "config" not in self._cache:
            self._cache["config"] = get_family(self.family).make_config(self.options)
        return self._cache["config"]

    @property
    def gmacs_2s(self) -> Optional[float]:
        return None if self.macs_2s is None else self.macs_2s / 1e9

    @property
    def default_weights(self) -> Optional["Weights"]:
        """The first weights registered for this architecture (the fine-tuned model for b0-b6)."""
        published = get_family(self.family).weights_of(self.name)
        return published[0] if published else None


@dataclass(frozen=True)
class Weights:
    """One published weight file of an architecture."""

    arch: str
    dataset: str
    train_type: str
    license: str
    eer: Optional[Tuple[float, float, float]] = None
    """Published Vox1-O / Vox1-E / Vox1-H EER (%), where the authors give it."""
    sha256: Optional[str] = None
    size: Optional[int] = None
    base_url: str = ""
    file_stem: Optional[str] = None
    """The model part of the published file name where it is not the architecture's name
    (ReDimNet2's ``b2-vox2-lm.pt`` is the weights of ``redimnet2-b2``)."""

    @property
    def tag(self) -> str:
        return f"{self.dataset}-{self.train_type}"

    @property
    def name(self) -> str:
        """The one-name form ``"<arch>.<dataset>-<train_type>"``."""
        return f"{self.arch}.{self.tag}"

    @property
    def file_name(self) -> str:
        """The published file name ``"<arch>-<dataset>-<train_type>.pt"``."""
        return f"{self.file_stem or self.arch}-{self.dataset}-{self.train_type}.pt"

    @property
    def cache_name(self) -> str:
        """The file's name in the cache folder: the published name after the family's
        :attr:`Family.cache_prefix` (both families publish e.g. ``b2-vox2-ptn.pt``)."""
        return get_family(self.architecture.family).cache_prefix + self.file_name

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.file_name

    @property
    def commercial_use(self) -> bool:
        return self.license == MIT

    @property
    def architecture(self) -> Architecture:
        for family in _FAMILIES.values():
            if self.arch in family.architectures:
                return family.architectures[self.arch]
        raise UnknownModelError(f"unknown model {self.arch!r}")

    # Names the old release table used.
    model_name = property(lambda self: self.arch)
