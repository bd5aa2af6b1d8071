"""The model registry: every architecture and every published weight file, in one table.

Two kinds of entries, after the torchvision ``Weights`` / timm ``arch.tag`` pattern:

* :class:`Architecture` -- a named network (``"b0"`` ... ``"b6"``, ``"M"``,
  ``"S"``): its configuration (where it is known without a weights file), the
  parameter count and GMACs measured on it (stored, so nothing has to be built
  to show them) and the numbers the paper reports.
* :class:`Weights` -- one published file of an architecture, named
  ``"<arch>.<dataset>-<train_type>"`` (e.g. ``"b2.vox2-ft_lm"``): file name,
  URL, SHA-256 and size where known, licence, training data and type, and the
  published EERs.

Every public entry point reads this one table: :func:`redimnet.build`,
:func:`redimnet.load`, :func:`redimnet.from_pretrained`, ``hubconf.py`` and
the command line's ``--model``.  :data:`DEFAULT_WEIGHTS` is the model a verb
uses when none is named.

Other model families join through :func:`register_family` (how to build and
load that family's networks, imported lazily), then
:func:`register_architecture` and :func:`register_weights`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import InvalidArgumentError

RELEASE_URL = "https://github.com/IDRnD/ReDimNet/releases/download/latest/"
"""Where the ReDimNet authors publish their weight files."""

MIT = "MIT"
CC_BY_NC_SA = "CC BY-NC-SA 4.0"

DEFAULT_WEIGHTS = "b2.vox2-ft_lm"
"""The model every verb uses when none is named: small, fast, MIT-licensed, 0.57 % EER on Vox1-O."""


class UnknownModelError(InvalidArgumentError):
    """A name that is not in the registry, or an architecture that cannot be built from its name alone."""


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------


def _resolve(reference: str) -> Callable:
    """The object a ``"package.module:attribute.attribute"`` reference names (imported now)."""
    module, _, attributes = reference.partition(":")
    target: Any = importlib.import_module(module)
    for attribute in attributes.split("."):
        target = getattr(target, attribute)
    return target


@dataclass(frozen=True)
class Family:
    """How to make the networks of one model family.

    The three hooks are ``"module:attribute"`` references, imported only when
    first used (so registering a family costs nothing and creates no import
    cycle):

    * ``config_from_dict(dict) -> config``: a configuration from a ``model_config`` dict;
    * ``build(config) -> nn.Module``: a randomly initialised network;
    * ``load_checkpoint(path, map_location=..., max_parameters=...) -> nn.Module``:
      a network from a file, whose ``config`` attribute compares equal to the
      configuration it was built from.
    """

    name: str
    config_from_dict: str
    build: str
    load_checkpoint: str
    description: str = ""

    def make_config(self, options: Mapping[str, Any]):
        return _resolve(self.config_from_dict)(options)

    def make_model(self, config):
        return _resolve(self.build)(config)

    def load(self, path, **options):
        return _resolve(self.load_checkpoint)(path, **options)


@dataclass(frozen=True)
class Architecture:
    """A named network with its measured and published numbers.

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
            weights = ", ".join(list_weights(self.name)) or "its weight files"
            raise UnknownModelError(
                f"the architecture of {self.name!r} is published only inside its weight files "
                f"({weights}); load one of them, e.g. redimnet.load({list_weights(self.name)[0]!r})"
                if list_weights(self.name)
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
        names = list_weights(self.name)
        return _WEIGHTS[names[0]] if names else None


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
    base_url: str = RELEASE_URL
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
        """The file's name in the cache folder: the published name, prefixed with the family
        for families other than ReDimNet (both publish e.g. ``b2-vox2-ptn.pt``)."""
        family = self.architecture.family
        return self.file_name if family == "redimnet" else f"{family}-{self.file_name}"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.file_name

    @property
    def commercial_use(self) -> bool:
        return self.license == MIT

    @property
    def architecture(self) -> Architecture:
        return get_architecture(self.arch)

    # Names the old release table used.
    model_name = property(lambda self: self.arch)


# ---------------------------------------------------------------------------
# the table and its registration functions
# ---------------------------------------------------------------------------

_FAMILIES: Dict[str, Family] = {}
_ARCHITECTURES: Dict[str, Architecture] = {}
_WEIGHTS: Dict[str, Weights] = {}


def register_family(family: Family) -> Family:
    """Add a model family (see :class:`Family`)."""
    if family.name in _FAMILIES and _FAMILIES[family.name] != family:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def register_architecture(arch: Architecture) -> Architecture:
    """Add an architecture; names are unique across families, case-insensitively."""
    if arch.family not in _FAMILIES:
        raise ValueError(f"register the family {arch.family!r} before its architecture {arch.name!r}")
    if "." in arch.name or arch.name.lower() in {n.lower() for n in _ARCHITECTURES}:
        raise ValueError(f"architecture name {arch.name!r} is taken or contains '.'")
    _ARCHITECTURES[arch.name] = arch
    return arch


def register_weights(weights: Weights) -> Weights:
    """Add a published weight file of a registered architecture."""
    if weights.arch not in _ARCHITECTURES:
        raise ValueError(f"register the architecture {weights.arch!r} before its weights {weights.name!r}")
    if weights.name in _WEIGHTS:
        raise ValueError(f"weights {weights.name!r} are already registered")
    _WEIGHTS[weights.name] = weights
    return weights


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise UnknownModelError(f"unknown model family {name!r}; known: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def list_models(family: Optional[str] = None) -> List[str]:
    """Architecture names, in registration order (b0 ... b6, M, S, then other families).

    Args:
        family: only this family's architectures (``"redimnet"``, ``"redimnet2"``); None for all.

    Returns:
        The names, as accepted by :func:`build`.
    """
    return [name for name, arch in _ARCHITECTURES.items() if family is None or arch.family == family]


def list_weights(arch: Optional[str] = None) -> List[str]:
    """Names ``"<arch>.<dataset>-<train_type>"`` of the published weights (of one architecture if given).

    Args:
        arch: an architecture name; None for every architecture.

    Returns:
        The names, as accepted by :func:`load` and :func:`get_weights`.
    """
    key = None if arch is None else get_architecture(arch).name
    return [name for name, weights in _WEIGHTS.items() if key is None or weights.arch == key]


def get_architecture(name: str) -> Architecture:
    """The :class:`Architecture` called ``name`` (case-insensitive).

    Args:
        name: an architecture name such as ``"b2"``.

    Returns:
        Its registry entry (configuration, paper metrics, weights).

    Raises:
        UnknownModelError: no architecture has that name.
    """
    text = str(name)
    for key, arch in _ARCHITECTURES.items():
        if key.lower() == text.lower():
            return arch
    raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(list_models())}")


get_preset = get_architecture  # the name used before the weights joined the table


def get_weights(name: str, tag: Optional[str] = None) -> Weights:
    """The :class:`Weights` named ``"b2.vox2-ft_lm"`` (or ``get_weights("b2", "vox2-ft_lm")``).

    Case-insensitive.  A tag may be shortened to the train type or the dataset
    when that picks one file (``"b2.ft_lm"``, ``"M.vb2"``); an architecture
    name alone means its default weights (``"b2"`` is ``"b2.vox2-ft_lm"``).

    Args:
        name: ``"<arch>.<tag>"``, or an architecture name.
        tag: the weights' tag, when ``name`` is an architecture.

    Returns:
        The registry entry of the weight file (URL, SHA-256, size, licence, published EERs).

    Raises:
        UnknownModelError: no published weights match.
    """
    text = str(name)
    if tag is None and "." in text:
        text, tag = text.split(".", 1)
    arch = get_architecture(text)
    candidates = [_WEIGHTS[n] for n in list_weights(arch.name)]
    if not candidates:
        raise UnknownModelError(
            f"no published weights for {arch.name!r}; build it with random weights "
            f"through redimnet.build({arch.name!r}) instead"
        )
    if tag is None:
        return candidates[0]
    wanted = str(tag).lower()
    exact = [w for w in candidates if w.tag.lower() == wanted]
    partial = [w for w in candidates if wanted in (w.train_type.lower(), w.dataset.lower())]
    found = exact or partial
    if len(found) != 1:
        problem = "is ambiguous" if found else "is not published"
        raise UnknownModelError(
            f"weights {arch.name}.{tag} {problem}; published for {arch.name}: {', '.join(w.name for w in candidates)}"
            f" (all: redimnet.list_weights())"
        )
    return found[0]


def find_weights(model_name: str, train_type: Optional[str] = None, dataset: Optional[str] = None) -> Weights:
    """The weights for the three strings of the file name (the original hub's arguments).

    Missing parts default to the architecture's default weights'.
    """
    arch = get_architecture(model_name)
    default = arch.default_weights
    if default is None:
        return get_weights(arch.name)  # raises the "no published weights" error
    if train_type is None and dataset is None:
        return default
    train_type = default.train_type if train_type is None else train_type
    if dataset is None:
        matching = [n for n in list_weights(arch.name) if _WEIGHTS[n].train_type == train_type]
        dataset = _WEIGHTS[matching[0]].dataset if matching else default.dataset
    return get_weights(arch.name, f"{dataset}-{train_type}")


def resolve_weights(
    name: Optional[str] = None, train_type: Optional[str] = None, dataset: Optional[str] = None
) -> Weights:
    """The one reading of a model name, for the API, ``hubconf.py`` and the command line's ``--model``.

    * nothing: :data:`DEFAULT_WEIGHTS`;
    * ``"b2.vox2-ft_lm"`` (or a shortened tag, see :func:`get_weights`): those weights;
    * an architecture (``"b2"``), optionally with ``train_type`` / ``dataset`` (the original hub's
      arguments): its default weights, or the ones these pick;
    * only ``train_type`` / ``dataset``: those of the default model's architecture.

    Raises:
        UnknownModelError: no published weights match, or weights named twice (a tag and ``train_type``/``dataset``).
    """
    if name is None:
        default = get_weights(DEFAULT_WEIGHTS)
        if train_type is None and dataset is None:
            return default
        name = default.arch
    text = str(name)
    if "." in text:
        if train_type is not None or dataset is not None:
            raise UnknownModelError(f"{text!r} already names the weights; leave out train_type and dataset")
        return get_weights(text)
    return find_weights(text, train_type, dataset)


# ---------------------------------------------------------------------------
# ReDimNet (IDRnD): b0-b6 trained on VoxCeleb2, M and S on VoxBlink2 + VoxCeleb2 + CN-Celeb
# ---------------------------------------------------------------------------

register_family(
    Family(
        "redimnet",
        "redimnet.models.redimnet.config:ModelConfig.from_dict",
        "redimnet.models.redimnet:ReDimNet",
        "redimnet.models.checkpoint:load_checkpoint",
        "ReDimNet, 'Reshape Dimensions Network for Speaker Recognition' (Interspeech 2024)",
    )
)

# ReDimNet2 (PalabraAI): the family is known, so its files load and its configurations build;
# architectures and published weights join here as they are published.
register_family(
    Family(
        "redimnet2",
        "redimnet.models.redimnet2.config:ReDimNet2Config.from_dict",
        "redimnet.models.redimnet2.model:ReDimNet2",
        "redimnet.models.checkpoint:load_checkpoint",
        "ReDimNet2, the successor family (its own stage wiring and options)",
    )
)

# Shared by every vox2 release model (see the release files' model_config).
_VOX2_COMMON = dict(
    F=72,
    block_1d_type="conv+att",
    out_channels=None,
    embed_dim=192,
    hop_length=240,
    pooling_func="ASTP",
    global_context_att=True,
    feat_type="pt",
    emb_bn=False,
)


def _stages(*rows: Tuple[int, int, int, Optional[int]]) -> list:
    """Stage rows ``(stride, num_blocks, conv_exp, att_block_red)``; all use 3x3 kernels."""
    return [(stride, blocks, exp, [(3, 3)], red) for stride, blocks, exp, red in rows]


def _vox2(name, options, measured, paper, eer, eer_asnorm):
    (parameters, macs), (params_m, gmacs) = measured, paper
    return register_architecture(
        Architecture(name, "redimnet", {**_VOX2_COMMON, **options}, parameters, macs, params_m, gmacs, eer, eer_asnorm)
    )


# measured: (parameters, MACs for 2 s) of this implementation; paper: (M params, GMACs)
_vox2(
    "b0",
    dict(
        F=60,
        C=10,
        block_2d_type="basic_resnet",
        group_divisor=1,
        stages_setup=_stages((1, 2, 1, 30), (2, 3, 2, 30), (1, 3, 3, 30), (2, 4, 2, 10), (1, 3, 1, 10)),
    ),
    (1_004_251, 415_069_960),
    (1.0, 0.43),
    (1.16, 1.25, 2.20),
    (1.07, 1.18, 2.01),
)
_vox2(
    "b1",
    dict(
        C=12,
        block_2d_type="convnext_like",
        group_divisor=8,
        stages_setup=_stages((1, 2, 1, None), (2, 3, 1, None), (3, 4, 1, 12), (2, 5, 1, 12), (2, 3, 1, 8)),
    ),
    (2_126_937, 604_447_408),
    (2.2, 0.54),
    (0.85, 0.97, 1.73),
    (0.73, 0.89, 1.57),
)
_vox2(
    "b2",
    dict(
        C=16,
        block_2d_type="convnext_like",
        group_divisor=4,
        stages_setup=_stages((1, 2, 1, 12), (2, 2, 1, 12), (1, 3, 1, 12), (2, 4, 1, 8), (1, 4, 1, 8), (2, 4, 1, 4)),
    ),
    (4_892_849, 943_550_128),
    (4.7, 0.90),
    (0.57, 0.76, 1.32),
    (0.52, 0.74, 1.27),
)
_vox2(
    "b3",
    dict(
        C=16,
        block_2d_type="basic_resnet_fwse",
        group_divisor=1,
        stages_setup=_stages(
            (1, 6, 4, 32), (2, 6, 2, 32), (1, 8, 2, 32), (2, 10, 2, 16), (1, 10, 1, 16), (2, 8, 1, 16)
        ),
    ),
    (3_225_021, 2_923_147_504),
    (3.0, 3.00),
    (0.50, 0.73, 1.33),
    (0.47, 0.69, 1.23),
)
_vox2(
    "b4",
    dict(
        C=32,
        block_2d_type="basic_resnet_fwse",
        group_divisor=1,
        stages_setup=_stages((1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16)),
    ),
    (6_441_521, 4_740_021_424),
    (6.3, 4.80),
    (0.51, 0.68, 1.26),
    (0.44, 0.64, 1.17),
)
_vox2(
    "b5",
    dict(
        C=32,
        block_2d_type="basic_resnet_fwse",
        group_divisor=16,
        stages_setup=_stages((1, 4, 2, 48), (2, 4, 2, 48), (1, 6, 2, 48), (2, 6, 1, 32), (1, 8, 1, 24), (2, 4, 1, 16)),
    ),
    (7_659_761, 8_824_598_704),
    (9.2, 9.87),
    (0.43, 0.61, 1.08),
    (0.39, 0.59, 1.05),
)
_vox2(
    "b6",
    dict(
        C=32,
        block_2d_type="basic_resnet",
        group_divisor=32,
        stages_setup=_stages((1, 4, 4, 32), (2, 6, 2, 32), (1, 6, 2, 24), (3, 8, 1, 24), (1, 8, 1, 16), (2, 8, 1, 16)),
    ),
    (15_015_473, 20_128_693_168),
    (15.0, 20.27),
    (0.40, 0.55, 1.05),
    (0.37, 0.53, 1.00),
)
for _name in ("M", "S"):
    register_architecture(
        Architecture(
            _name,
            "redimnet",
            notes="trained on VoxBlink2 (+ VoxCeleb2 + CN-Celeb); the configuration is "
            "published only inside the weight files",
        )
    )

_KNOWN_FILES = {  # file name: (SHA-256, size in bytes) of the published files whose hash is known
    "b2-vox2-ft_lm.pt": ("c9b6bb2f6747caa28a41eaf2e372d66b0d1563baef186d18f5e99abd5e71e06f", 20_582_650),
    "b2-vox2-ptn.pt": ("c18a42926878bc8ac079623fbf36f0bc8054cda1199e96fbe1a3f8e131796647", 20_581_530),
    "b5-vox2-ft_lm.pt": ("8b0c11bbf5a3a8bb39e5c072c4192d0b694d8c447cf126d4cd3c7346a04b39c8", 31_174_382),
}


def _release(arch, dataset, train_type, license, eer=None):
    sha, size = _KNOWN_FILES.get(f"{arch}-{dataset}-{train_type}.pt", (None, None))
    return register_weights(Weights(arch, dataset, train_type, license, eer, sha, size))


for _name in list_models("redimnet"):
    if _name.startswith("b"):  # fine-tuned first: it is the architecture's default
        _release(_name, "vox2", "ft_lm", MIT, get_architecture(_name).paper_eer)
        _release(_name, "vox2", "ptn", MIT)
_release("M", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.835, 0.745, 1.284))
_release("M", "vb2", "ptn", CC_BY_NC_SA)
_release("S", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.936, 0.874, 1.510))
_release("S", "vb2", "ptn", CC_BY_NC_SA)


# ---------------------------------------------------------------------------
# ReDimNet2 (PalabraAI): b0-b6 trained on VoxCeleb2, b6 also on VoxBlink2 + VoxCeleb2
# ---------------------------------------------------------------------------


def _register_redimnet2():
    from ..models.redimnet2 import presets

    for key in presets.OPTIONS:
        name = "redimnet2-" + key.replace("_", "-")
        parameters, macs = presets.MEASURED[key]
        params_m, gmacs, eer = presets.PUBLISHED[key]
        notes = (
            (
                "the VoxBlink2 + VoxCeleb2 release of b6 (agg_gnorm); other EER %: "
                + ", ".join(f"{k} {v}" for k, v in presets.VB2_EXTRA_EER.items())
            )
            if key == "b6_vb2"
            else ""
        )
        register_architecture(
            Architecture(name, "redimnet2", presets.options(key), parameters, macs, params_m, gmacs, eer, None, notes)
        )
    for model, dataset, train_type, key in presets.RELEASES:  # "lm" first: the default
        published_eer = presets.PUBLISHED[key][2] if train_type == "lm" else None
        register_weights(
            Weights(
                "redimnet2-" + key.replace("_", "-"),
                dataset,
                train_type,
                presets.LICENSE,
                published_eer,
                base_url=presets.RELEASE_URL,
                file_stem=model,
            )
        )


_register_redimnet2()
