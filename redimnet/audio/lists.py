"""Kaldi-style two-column text files: ``wav.scp`` (``UTT PATH``), ``utt2spk`` (``UTT SPEAKER``)."""

import os
from pathlib import Path
from typing import Dict, List, Tuple, Type, Union

from ..errors import RedimnetError

PathLike = Union[str, os.PathLike]


def read_two_columns(
    path: PathLike, columns: Tuple[str, str], error: Type[RedimnetError] = RedimnetError, what: str = "list"
) -> List[Tuple[int, str, str]]:
    """``(line_number, key, value)`` for every line that is not blank or a ``#`` comment.

    The key is the first whitespace-separated field, the value the rest of the line
    (so paths may contain spaces).  Problems raise ``error`` naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"cannot read {what} {path}: {getattr(problem, 'strerror', None) or problem}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise error(f"{path}:{number}: expected '{columns[0]} {columns[1]}', got {line[:120]!r}")
        rows.append((number, parts[0], parts[1].strip()))
    return rows


def read_table(
    path: PathLike, columns: Tuple[str, str], error: Type[RedimnetError] = RedimnetError, what: str = "list"
) -> Dict[str, str]:
    """``{key: value}`` of a two-column file whose keys must be unique and which must not be empty."""
    table: Dict[str, str] = {}
    for number, key, value in read_two_columns(path, columns, error, what):
        if key in table and table[key] != value:
            raise error(
                f"{path}:{number}: {columns[0].lower()} {key!r} appears twice with different values "
                f"({table[key]!r} and {value!r})"
            )
        if key in table:
            raise error(f"{path}:{number}: {columns[0].lower()} {key!r} appears twice")
        table[key] = value
    if not table:
        raise error(f"{what} {path} lists nothing")
    return table
