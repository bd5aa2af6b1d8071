"""Names of architectures and published weights, over every model family's registrations.

The families register their architectures and weights themselves
(:mod:`redimnet.models.common.family`; :data:`redimnet.models.redimnet.FAMILY`,
:data:`redimnet.models.redimnet2.FAMILY`); this module reads those registrations by name:
:func:`list_models`, :func:`list_weights`, :func:`get_architecture`, :func:`get_weights`, and
:func:`resolve_weights`, the one reading of a model name that every public entry point uses
(:func:`redimnet.build`, :func:`redimnet.load`, :func:`redimnet.from_pretrained`, ``hubconf.py`` and
the command line's ``--model``).  :data:`DEFAULT_WEIGHTS` is the model a verb uses when none is named.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..errors import UnknownModelError
from ..models.common.family import Architecture, Family, Weights, register_family
from ..models.families import get_family, registered_families
from ..models.redimnet.presets import RELEASE_URL

__all__ = [
    "DEFAULT_WEIGHTS",
    "RELEASE_URL",
    "Architecture",
    "Family",
    "UnknownModelError",
    "Weights",
    "find_weights",
    "get_architecture",
    "get_preset",
    "get_weights",
    "list_models",
    "list_weights",
    "register_family",
    "resolve_weights",
]

DEFAULT_WEIGHTS = "b2.vox2-ft_lm"
"""The model every verb uses when none is named: small, fast, MIT-licensed, 0.57 % EER on Vox1-O."""


def _architectures() -> Dict[str, Architecture]:
    return {name: arch for family in registered_families() for name, arch in family.architectures.items()}


def _weights() -> Dict[str, Weights]:
    return {name: weights for family in registered_families() for name, weights in family.weights.items()}


def list_models(family: Optional[str] = None) -> List[str]:
    """Architecture names, in registration order (b0 ... b6, M, S, then other families).

    Args:
        family: only this family's architectures (``"redimnet"``, ``"redimnet2"``); None for all.

    Returns:
        The names, as accepted by :func:`build`.
    """
    return [name for name, arch in _architectures().items() if family is None or arch.family == family]


def list_weights(arch: Optional[str] = None) -> List[str]:
    """Names ``"<arch>.<dataset>-<train_type>"`` of the published weights (of one architecture if given).

    Args:
        arch: an architecture name; None for every architecture.

    Returns:
        The names, as accepted by :func:`load` and :func:`get_weights`.
    """
    key = None if arch is None else get_architecture(arch).name
    return [name for name, weights in _weights().items() if key is None or weights.arch == key]


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
    for key, arch in _architectures().items():
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
    candidates = list(get_family(arch.family).weights_of(arch.name))
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
        matching = [w for w in get_family(arch.family).weights_of(arch.name) if w.train_type == train_type]
        dataset = matching[0].dataset if matching else default.dataset
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
