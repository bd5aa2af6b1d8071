"""Reading a training config file: YAML with syntax errors reported by line, ``base:`` files laid
under it, and ``section.key=value`` overrides from the command line (``--set``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Mapping, Union

from .._utils.fileio import read_text
from ..errors import ConfigError

PathLike = Union[str, os.PathLike]


def apply_overrides(options: dict, assignments: List[str], source: str = "--set") -> dict:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a raw config mapping."""
    import yaml

    options = dict(options or {})
    for text in assignments:
        if "=" not in text or "." not in text.split("=", 1)[0]:
            raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. train.epochs=3")
        dotted, raw = text.split("=", 1)
        section, key = dotted.strip().split(".", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} {text!r}: the value is not valid YAML ({error})") from None
        options[section] = dict(options.get(section) or {})
        options[section][key] = value
    return options


MAX_BASES = 4
"""How many ``base:`` files a config may stand on, one on another."""


def read_config_file(path: PathLike, _depth: int = 0) -> dict:
    """The raw mapping in a YAML file, with YAML syntax errors reported by line.

    A mapping with a ``base:`` key (a shipped base, see :func:`redimnet.recipes.list_bases`) is laid
    over that base: its sections' keys replace the base's, key by key.
    """
    import yaml

    path = Path(path)
    text = read_text(path, "config file", ConfigError)
    try:
        options = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    if not isinstance(options, dict) or "base" not in options:
        return options
    from ..recipes import base_path

    if _depth >= MAX_BASES:
        raise ConfigError(f"{path}: base: more than {MAX_BASES} bases, one on another (a base that names itself?)")
    base = read_config_file(base_path(options["base"], where=str(path)), _depth + 1)
    return _laid_over(base, {key: value for key, value in options.items() if key != "base"})


def _laid_over(base: Any, overlay: Any) -> Any:
    """``overlay`` laid over ``base``: mappings key by key, anything else replaced."""
    if not isinstance(base, Mapping) or not isinstance(overlay, Mapping):
        return overlay
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = _laid_over(base[key], value) if key in base else value
    return merged
