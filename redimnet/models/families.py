"""The model families this package ships, and which family a checkpoint or a network belongs to.

Each family package makes and registers one :class:`~redimnet.models.common.family.Family`
(:data:`redimnet.models.redimnet.FAMILY`, :data:`redimnet.models.redimnet2.FAMILY`); importing
this module makes sure they are registered.  Every question about families is answered here, from
those registrations: another family joins by registering its own object, nothing here changes.
"""

from typing import Any, Optional

from ..errors import InvalidArgumentError
from .common.family import Family, get_family, registered_families
from .redimnet import FAMILY as REDIMNET
from .redimnet2 import FAMILY as REDIMNET2

__all__ = [
    "REDIMNET",
    "REDIMNET2",
    "Family",
    "build_model",
    "check_family",
    "detect_family",
    "family_of",
    "get_family",
    "registered_families",
]


def detect_family(model_config: Any) -> str:
    """The name of the family a checkpoint's ``model_config`` belongs to: the first whose marks it
    carries, else the family of files without marks (ReDimNet's original release format)."""
    unmarked = None
    for family in registered_families():
        if family.marks is None:
            unmarked = unmarked or family
        elif family.recognises(model_config):
            return family.name
    assert unmarked is not None  # ReDimNet is registered above
    return unmarked.name


def check_family(family: Optional[str]) -> Optional[str]:
    """``family`` if it names a registered family (or is None), else :class:`InvalidArgumentError`."""
    names = [f.name for f in registered_families()]
    if family is not None and family not in names:
        raise InvalidArgumentError(f"family={family!r} is not a model family; choose one of {', '.join(names)}")
    return family


def family_of(model: Any) -> Family:
    """The family of a network (plain or inference form), from its configuration."""
    return get_family(model.config.family)


def build_model(config):
    """A randomly initialised network of the family ``config`` belongs to."""
    return get_family(config.family).build(config)
