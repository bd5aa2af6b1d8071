"""Training recipes shipped with the package, addressable by name.

Each ``<name>.yaml`` here is a training config (``b2_pretrain``: pre-training on 2 s crops,
``b2_lm``: large-margin fine-tuning on 6 s crops, and the same for every size b0-b6;
``synthetic_small``: a small model trained on synthetic speakers in minutes).  The recipes of
one kind share a base (``bases/pretrain.yaml``, ``bases/lm.yaml`` and ReDimNet2's two): a recipe
says ``base: pretrain`` and sets only what differs (the preset, the batch size, the output folder),
and :func:`redimnet.training.config.load_config` lays it over its base. Where a
config is asked for, a recipe name and a path to a YAML file are both accepted::

    redimnet train --list-configs
    redimnet train --config b2_pretrain
    redimnet train --config my_recipe.yaml
"""

from importlib import resources
from pathlib import Path
from typing import List, Union

from ..errors import ConfigError

__all__ = ["base_path", "list_bases", "list_recipes", "recipe_path", "resolve_config"]


def _folder():
    return resources.files(__name__)


def list_recipes() -> List[str]:
    """Names of the shipped recipes, sorted (``b0_lm``, ``b0_pretrain``, ...)."""
    return sorted(entry.name[: -len(".yaml")] for entry in _folder().iterdir() if entry.name.endswith(".yaml"))


def recipe_path(name: str) -> Path:
    """The file of the shipped recipe ``name`` (with or without ``.yaml``)."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in list_recipes():
        raise ConfigError(
            f"no shipped recipe named {name!r}; the recipes are: {', '.join(list_recipes())} "
            "(or give the path of a YAML file)"
        )
    return Path(str(_folder().joinpath(f"{stem}.yaml")))


def resolve_config(name_or_path: Union[str, Path]) -> Path:
    """A YAML file given as a path (used when it exists) or as a shipped recipe's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.exists():
        raise ConfigError(f"config {path} is not a file")
    text = str(name_or_path)
    if "/" in text or "\\" in text or path.suffix not in ("", ".yaml"):
        raise ConfigError(
            f"config {path} not found (give an existing YAML file, or a recipe name such as "
            f"{list_recipes()[0]!r}: see 'redimnet train --list-configs')"
        )
    return recipe_path(text)


def list_bases() -> List[str]:
    """Names of the bases recipes start from (``lm``, ``pretrain``, ...)."""
    folder = _folder().joinpath("bases")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def base_path(name: object, where: str = "config") -> Path:
    """The file of the shipped base ``name`` (what a config's ``base:`` key names)."""
    if not isinstance(name, str) or name not in list_bases():
        raise ConfigError(f"{where}: base: {name!r} is not a shipped base; the bases are: {', '.join(list_bases())}")
    return Path(str(_folder().joinpath("bases", f"{name}.yaml")))
