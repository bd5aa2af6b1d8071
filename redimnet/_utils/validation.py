"""The checks every configuration is validated with; each raises :class:`~redimnet.errors.ConfigError`.

Two forms, for the two ways a configuration names what is wrong:

* named checks (:func:`positive_int`, :func:`choice`, :func:`probability`, :func:`flag`,
  :func:`at_least`, :func:`positive`, :func:`strictly_between`, :func:`within`) take the option's
  name and say the whole sentence ("C must be a positive integer, got 0") -- the model
  configurations and the command line's options use them;
* value checks (:func:`integer`, :func:`number`, :func:`string`, ...) are made once per key of a
  declarative configuration, take only the value, return it (normalised) and say the problem
  ("must be an integer >= 1, got 0"), leaving the file and key to the caller -- the training
  configurations declare their keys with them.

A declarative configuration is a set of sections, each a dataclass whose fields are declared with
:func:`setting` (check, default, doc); :func:`build_section` reads one section from a file's raw
mapping (unknown keys, non-finite numbers and failed checks raise :class:`ConfigError` naming the
file and ``section.key``), :func:`sections_to_dict` writes the sections back as plain data and
:func:`check_existing` checks the paths a configuration names.
"""

import dataclasses
import math
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

from ..errors import ConfigError

Check = Callable[[Any], Any]


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An integer or a float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- named checks


def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not is_int(value) or value <= 0:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a positive integer{extra}, got {value!r}")


def choice(name: str, value: Any, choices: Iterable) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")


def probability(name: str, value: Any) -> None:
    if not is_number(value) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


def flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def _shown(value: Any) -> str:
    """A number as a message shows it: whole numbers without a decimal point, others in ``%g``."""
    if not is_number(value):
        return repr(value)
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def at_least(name: str, value: Any, minimum: float, unit: str = "") -> None:
    """A number not below ``minimum`` (NaN refused), e.g. a command-line count: "--last must be at least 1"."""
    if not is_number(value) or not value >= minimum:
        raise ConfigError(f"{name} must be at least {_shown(minimum)}{unit}, got {_shown(value)}")


def positive(name: str, value: Any) -> None:
    """A number above zero (NaN refused)."""
    if not is_number(value) or not value > 0:
        raise ConfigError(f"{name} must be positive, got {_shown(value)}")


def strictly_between(name: str, value: Any, low: float, high: float) -> None:
    """A number inside the open interval (``low``, ``high``), e.g. a prior probability."""
    if not is_number(value) or not low < value < high:
        raise ConfigError(f"{name} must be strictly between {_shown(low)} and {_shown(high)}, got {_shown(value)}")


def within(name: str, value: Any, low: float, high: float, unit: str = "") -> None:
    """A number in the closed interval [``low``, ``high``] (NaN refused)."""
    if not is_number(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be from {_shown(low)} to {_shown(high)}{unit}, got {_shown(value)}")


# --------------------------------------------------------------------------- value checks


def integer(minimum: int = 0) -> Check:
    def check(value):
        if not is_int(value) or value < minimum:
            raise ConfigError(f"must be an integer >= {minimum}, got {value!r}")
        return value

    return check


def number(minimum: float = 0.0, maximum: Optional[float] = None, open_low: bool = False) -> Check:
    def check(value):
        ok = is_number(value) and (value > minimum if open_low else value >= minimum)
        ok = ok and (maximum is None or value <= maximum)
        if not ok:
            low = f"> {minimum}" if open_low else f">= {minimum}"
            high = f" and <= {maximum}" if maximum is not None else ""
            raise ConfigError(f"must be a number {low}{high}, got {value!r}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}")
    return value


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be a non-empty string, got {value!r}")
    return value


def one_of(*choices: Any) -> Check:
    def check(value):
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return check


def optional(inner: Check) -> Check:
    def check(value):
        return None if value is None else inner(value)

    return check


def number_pair(minimum: Optional[float] = None) -> Check:
    def check(value) -> Tuple[Any, Any]:
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(is_number(v) for v in value)
            or value[0] > value[1]
            or (minimum is not None and value[0] < minimum)
        ):
            raise ConfigError(f"must be a pair [low, high] with low <= high, got {value!r}")
        return (value[0], value[1])

    return check


def int_pair(value: Any) -> Tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(is_int(v) for v in value)
        or not 0 <= value[0] < value[1]
    ):
        raise ConfigError(f"must be a pair of integers [low, high] with 0 <= low < high, got {value!r}")
    return (value[0], value[1])


def mapping(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping of options, got {value!r}")
    return dict(value)


# --------------------------------------------------------------------------- declared sections


def setting(
    check: Check, default: Any = dataclasses.MISSING, doc: str = "", factory: Optional[Callable[[], Any]] = None
):
    """A declared key of a config section (a dataclass field): its value check, its default and a line for people."""
    metadata = {"check": check, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def first_non_finite(value, where: str = "") -> Optional[Tuple[str, float]]:
    """``(sub-key, value)`` of the first infinite or NaN number in a (nested) config value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, Mapping):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, inner in items:
        found = first_non_finite(inner, sub)
        if found is not None:
            return found
    return None


def build_section(name: str, section_cls, options, source: str):
    """One section's dataclass from its raw mapping, every key checked (``ConfigError`` naming file and key)."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{source}: {name}: must be a mapping of keys, got {options!r}")
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    values = {}
    for key, value in options.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'; known keys in '{name}': {', '.join(fields)}")
        non_finite = first_non_finite(value)
        if non_finite is not None:
            raise ConfigError(
                f"{source}: {name}.{key}{non_finite[0]}: {non_finite[1]} is not a finite number; "
                "training needs finite values (YAML .inf and .nan are refused everywhere)"
            )
        try:
            values[key] = fields[key].metadata["check"](value)
        except ValueError as error:
            raise ConfigError(f"{source}: {name}.{key} {error}") from None
    return section_cls(**values)


def sections_to_dict(config, sections: Mapping[str, type]) -> dict:
    """A config's sections as plain data (lists, not tuples), suitable for YAML and for checkpoints."""

    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(dataclasses.asdict(getattr(config, name))) for name in sections}


def check_existing(config, checks: List[Tuple[str, Optional[str], str]]) -> None:
    """Raise ``config.error(key, ...)`` for each ``(key, path, kind)`` whose path (when set) is missing or
    not of its kind (``file``, ``dir`` or ``any``)."""
    for key, value, kind in checks:
        if value is None:
            continue
        path = Path(value)
        if not path.exists():
            raise config.error(key, f"{value} does not exist")
        if kind == "file" and not path.is_file():
            raise config.error(key, f"{value} is not a file")
        if kind == "dir" and not path.is_dir():
            raise config.error(key, f"{value} is not a folder")
