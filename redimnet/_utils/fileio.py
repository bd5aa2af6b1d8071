"""Writing files so that readers never see a partial one; reading small text files with clear errors."""

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]


def _create_temporary(folder: Path, prefix: str, suffix: str):
    """``(fd, path)`` of a new file in ``folder``, created with mode 0666 minus the umask (as ``open`` would)."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot find a free temporary name for {prefix!r} in {folder}")


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "wb", suffix: str = ".tmp", encoding: str = "utf-8", newline: Optional[str] = None
) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success flush, fsync and rename it to ``path``.

    If the block raises (or the process dies), ``path`` keeps its old content
    (or stays absent) and the temporary file is removed where possible.
    ``suffix`` ends the temporary name (e.g. ``".tmp.npz"`` for numpy, which
    appends ``.npz`` to names without it).  Text modes (``"w"``) use
    ``encoding`` (UTF-8 unless told) and ``newline`` as :func:`open` does.  A new file gets the permissions
    any program would give it (``0666`` minus the umask); a replaced file
    keeps its permission bits.  If ``path`` is a symbolic link, the link is
    replaced, not its target.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = _create_temporary(path.parent, f".{path.name}.", suffix)
    try:
        with contextlib.suppress(FileNotFoundError):
            previous = os.lstat(path)
            if not os.path.islink(path):
                os.chmod(handle, previous.st_mode & 0o7777)
        stream: IO
        if "b" in mode:
            stream = os.fdopen(handle, mode)
        else:
            stream = os.fdopen(handle, mode, encoding=encoding, newline=newline)
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def exclusive_lock(path: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if absent) for the block: one
    process (or thread) at a time, whoever else asks waits.  POSIX ``flock``; elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_text(path: PathLike, what: str, error: Callable[[str], Exception]) -> str:
    """The UTF-8 text of ``path``.  A missing or unreadable file raises ``error(message)``, the
    message naming ``what`` the file is (e.g. ``"config file"``), the path and the reason."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"cannot read {what} {path}: {problem}") from None
