"""Names taken from user data: utterance ids, speaker names.

Ids and names come from lists, folder names and databases the user may not
control.  This module is the one place that decides

* which ids may become a file below an output folder (:func:`path_below`):
  relative, ``/``-separated, no empty, ``.`` or ``..`` component, no
  backslash, no NUL or other control character, no component longer than
  :data:`MAX_COMPONENT_BYTES`, and the result never leaves the folder, not
  even through a symbolic link already inside it;
* which speaker names a database accepts, and in which form
  (:func:`check_speaker_name`): NFC-normalised, at most
  :data:`MAX_NAME_LENGTH` characters, only visible characters and ordinary
  spaces;
* how an id or name is shown on a terminal or in a tab-separated report
  (:func:`printable`): control characters (ANSI escapes, newlines, tabs,
  bidirectional overrides) are written as ``\\x1b``, ``\\n``, ``\\t``,
  ``\\u202e``, so they cannot forge lines, rows or the order of what is shown.

A refused id raises :class:`UnsafeNameError`, which names the id and the rule;
callers that write many items refuse that one item and write the others.
"""

import os
import unicodedata
from pathlib import Path
from typing import Sequence, Union

from ..errors import NAME, RedimnetError

PathLike = Union[str, os.PathLike]

#: Longest speaker name (in characters) a speaker database accepts.
MAX_NAME_LENGTH = 256

#: Longest file or folder name (in UTF-8 bytes) that common file systems store.
MAX_COMPONENT_BYTES = 255


class UnsafeNameError(RedimnetError, ValueError):
    """An utterance id or speaker name cannot be used (it would leave the output folder, or is unprintable)."""

    category = NAME


# Bidirectional overrides, embeddings and isolates: they reorder how the rest of a line is displayed.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls (NUL, ESC, newline, tab, DEL, ...); Zl/Zp: Unicode line/paragraph separators.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def printable(text: object, backslashes: bool = True) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\t``, ``\\x1b``, ...) and backslashes doubled.

    Reversible, and safe to print on a terminal or to write as one field of a
    tab-separated line.  ``backslashes=False`` leaves backslashes alone: still
    safe on a terminal, for text (a message) whose parts were escaped already.
    """
    text = str(text)
    if not any(_is_control(c) or (backslashes and c == "\\") for c in text):
        return text
    out = []
    for char in text:
        if backslashes and char == "\\":
            out.append("\\\\")
        elif _is_control(char):
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def _first_control(text: str):
    if text.isascii() and text.isprintable():  # fast path (bulk imports): printable ASCII has no control character
        return None
    return next((c for c in text if _is_control(c)), None)


def check_relative_id(uid: object, what: str = "utterance id") -> str:
    """``uid`` if it can name a file below an output folder, else :class:`UnsafeNameError`.

    Rules: a non-empty string, not absolute (``/x``, ``\\x``, ``C:x``), no
    backslash, no NUL or control character, every ``/``-separated component
    non-empty and neither ``.`` nor ``..``.
    """
    if not isinstance(uid, str):
        raise UnsafeNameError(f"{what} must be a string, got {type(uid).__name__}")
    shown = printable(uid)
    if not uid:
        raise UnsafeNameError(f"{what} is empty")
    bad = _first_control(uid)
    if bad is not None:
        raise UnsafeNameError(
            f"{what} '{shown}' contains the control character {printable(bad)}; "
            "ids that become file names must be printable"
        )
    if uid.startswith("/") or (len(uid) >= 2 and uid[1] == ":" and uid[0].isalpha()):
        raise UnsafeNameError(
            f"{what} '{shown}' is an absolute path; ids that become file names must be relative (e.g. spk1/utt1)"
        )
    if "\\" in uid:
        raise UnsafeNameError(f"{what} '{shown}' contains a backslash; separate folders with '/'")
    for part in uid.split("/"):
        if part in ("", ".", ".."):
            kind = "an empty" if not part else f"a '{part}'"
            raise UnsafeNameError(
                f"{what} '{shown}' has {kind} path component; ids that become file names "
                "may not contain '//', '.' or '..' components, or start or end with '/'"
            )
    return uid


def path_below(root: PathLike, uid: str, suffix: str = "", what: str = "utterance id") -> Path:
    """The file ``root/uid + suffix``, after checking that it stays below ``root``.

    ``uid`` must pass :func:`check_relative_id`; in addition the path, with
    every symbolic link that already exists resolved, must lie inside
    ``root`` (resolved the same way).  Raises :class:`UnsafeNameError`
    otherwise; nothing is created here.
    """
    check_relative_id(uid, what)
    parts = (uid + suffix).split("/")
    for part in parts:
        size = len(os.fsencode(part)) if _encodable(part) else None
        if size is None:
            raise UnsafeNameError(f"{what} '{printable(uid)}' cannot be encoded as a file name on this system")
        if size > MAX_COMPONENT_BYTES:
            raise UnsafeNameError(
                f"{what} '{printable(uid[:40])}...' has a path component of {size} bytes; "
                f"file systems allow {MAX_COMPONENT_BYTES}"
            )
    root = Path(root)
    target = root / (uid + suffix)
    real_root = os.path.realpath(root)
    real_target = os.path.realpath(target)
    if os.path.commonpath([real_root, real_target]) != real_root or real_target == real_root:
        raise UnsafeNameError(
            f"{what} '{printable(uid)}' would be written outside {printable(root)} "
            f"(through a symbolic link, to {printable(real_target)}); refused"
        )
    return target


def _encodable(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


# Characters that draw nothing, or look like nothing, without being controls or format characters (Cf):
# the Unicode default-ignorable ones of other categories (combining grapheme joiner, Hangul fillers, Khmer
# inherent vowels, Mongolian variation selectors, variation selectors) and the blank Braille pattern.
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
)


def _name_problem(char: str):
    """What makes ``char`` unfit for a speaker name, or ``None``."""
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
        return "the control character"
    if category == "Cf":
        return "the invisible formatting character"
    if category in ("Cs", "Co", "Cn"):
        return "the unassigned or private-use character"
    if category == "Zs" and char != " ":
        return "a space other than the ordinary one,"
    if char in _INVISIBLE or 0xE0100 <= ord(char) <= 0xE01EF:
        return "the invisible character"
    return None


def check_speaker_name(name: object) -> str:
    """The form under which every speaker store files ``name``, or :class:`UnsafeNameError`.

    The one naming policy (command line, library, service, every store):
    surrounding spaces are dropped and the name is normalised to Unicode NFC
    (a composed and a decomposed "José" are the same name); then it must be
    non-empty, at most :data:`MAX_NAME_LENGTH` characters, and hold only
    visible characters and ordinary spaces: no control characters (newline,
    tab, ANSI escapes), no invisible or formatting characters (zero-width
    spaces and joiners U+200B-U+200D, U+2060, the byte-order mark U+FEFF,
    bidirectional controls, tag characters U+E0000-U+E007F, variation
    selectors, Hangul fillers, ...), no unassigned or private-use code points
    and no other spaces (no-break, thin, ideographic, ...), so two names that
    look the same are the same name.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"speaker name must be a string, got {type(name).__name__}")
    name = name.strip()
    if not (name.isascii() and name.isprintable()):  # printable ASCII is its own NFC form (bulk imports: fast)
        name = unicodedata.normalize("NFC", name)
    if not name:
        raise UnsafeNameError("speaker name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UnsafeNameError(
            f"speaker name '{printable(name[:40])}...' is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if name.isascii() and name.isprintable():
        return name
    for position, char in enumerate(name):
        problem = _name_problem(char)
        if problem is not None:
            code = f"U+{ord(char):04X}"
            label = unicodedata.name(char, "")
            shown = printable(name) if len(name) <= 60 else printable(name[:60]) + "..."
            raise UnsafeNameError(
                f"speaker name '{shown}' contains {problem} {code}"
                + (f" ({label})" if label else "")
                + f" at position {position + 1}; names may hold only visible characters and ordinary spaces "
                "(names that look the same must be the same)"
            )
    return name


def plain_names(names: Sequence[str]) -> bool:
    """True when every one of ``names`` is already in the form :func:`check_speaker_name` files it under and
    passes it: printable ASCII (its own NFC form), no surrounding spaces, 1 to :data:`MAX_NAME_LENGTH`
    characters.  Checked for all names at once (a bulk import of a million speakers); when it is False,
    check each name with :func:`check_speaker_name`."""
    import numpy as np

    if not len(names):
        return True
    joined = "".join(names)
    if not (joined.isascii() and joined.isprintable()):
        return False
    array = np.asarray(names, dtype=str)
    lengths = np.strings.str_len(array)
    return bool(
        lengths.min() >= 1 and lengths.max() <= MAX_NAME_LENGTH and np.all(np.strings.strip(array, " ") == array)
    )


def spelled(name: str) -> str:
    """``name`` with every character outside printable ASCII written as ``\\uXXXX`` (look-alikes told apart)."""
    return name.encode("ascii", "backslashreplace").decode("ascii")
