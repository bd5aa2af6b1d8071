"""Published weights: download once, cache, verify, load.

The files themselves are described in :mod:`redimnet.hub.registry` (one entry per
file: URL, SHA-256 and size where known, licence, published EERs).  This
module fetches them:

* Cache folder: ``cache_dir`` argument (``--cache-dir``), else
  ``$REDIMNET_CACHE``, else ``torch.hub.get_dir()/checkpoints`` (the folder
  ``torch.hub`` itself downloads to, so a file the original
  ``torch.hub.load`` fetched is reused).
* Base URL: ``base_url`` argument, else ``$REDIMNET_BASE_URL``, else the
  authors' GitHub release.
* A download goes to a temporary ``.partial`` name in the cache folder, is
  checked against the expected SHA-256 (the published one, or ``sha256=``
  given by the caller) and only then renamed into place.  Leftovers of a
  killed download are removed by the next download of the same file.
* The SHA-256 of every file is recorded next to it (``<file>.sha256``) when
  it is downloaded or first used, and checked on every later load: a
  truncated or altered cached file is downloaded again (or, offline, the
  error names the file to delete).
* After loading, the file's configuration is compared with the registry's
  architecture (b0-b6); a file whose network differs is refused.  M and S,
  whose configuration is published only inside their files, must hold a
  valid configuration within :data:`redimnet.models.checkpoint.MAX_PARAMETERS`.
"""

import contextlib
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .._utils.fileio import atomic_write, exclusive_lock
from ..errors import PretrainedError
from ..models.families import get_family
from .registry import (
    RELEASE_URL,
    Weights,
    get_architecture,
    get_weights,
    list_weights,
    resolve_weights,
)

PathLike = Union[str, os.PathLike]

CACHE_ENV = "REDIMNET_CACHE"
BASE_URL_ENV = "REDIMNET_BASE_URL"

Release = Weights  # the name of a release-table entry before the registry held the weights

__all__ = [
    "PretrainedError",
    "NonCommercialLicenseWarning",
    "RELEASE_URL",
    "Release",
    "RELEASES",
    "CACHE_ENV",
    "BASE_URL_ENV",
    "checkpoint_path",
    "copy_into_cache",
    "default_cache_dir",
    "download",
    "find_release",
    "from_pretrained",
    "list_pretrained",
    "load_weights",
    "sha256_of",
]


class NonCommercialLicenseWarning(UserWarning):
    """The loaded weights may only be used for non-commercial purposes."""


def _releases() -> Dict[Tuple[str, str, str], Weights]:
    entries = (get_weights(name) for name in list_weights())
    return {(w.arch, w.dataset, w.train_type): w for w in entries if w.base_url == RELEASE_URL}


RELEASES: Dict[Tuple[str, str, str], Weights] = _releases()
"""The authors' release files by ``(model_name, dataset, train_type)`` (a view of the registry)."""


def list_pretrained() -> List[Weights]:
    """Every published weight file (the registry's :class:`~redimnet.hub.registry.Weights` entries).

    Returns:
        The entries, in registration order.
    """
    return [get_weights(name) for name in list_weights()]


def find_release(model_name: str, train_type: Optional[str] = None, dataset: Optional[str] = None) -> Weights:
    """The weights for a ``(model_name, train_type, dataset)`` combination (model names case-insensitive)."""
    return _weights_of(model_name, train_type, dataset)


# ---------------------------------------------------------------------------
# cache folder
# ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$REDIMNET_CACHE``, else ``torch.hub.get_dir()/checkpoints``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _cache_folder(cache_dir: Optional[PathLike]) -> Tuple[Path, str]:
    """The cache folder and how the user changes it (for error messages)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser(), "the cache_dir argument (--cache-dir on the command line)"
    if os.environ.get(CACHE_ENV):
        return default_cache_dir(), f"the environment variable {CACHE_ENV}"
    return default_cache_dir(), f"the environment variable {CACHE_ENV} (or --cache-dir / cache_dir)"


def _writable_folder(folder: Path, how_to_change: str) -> None:
    """Create ``folder``; a one-line :class:`PretrainedError` when it cannot hold downloads."""
    if folder.exists() and not folder.is_dir():
        raise PretrainedError(f"the weights cache {folder} is not a folder; set {how_to_change} to a writable folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(_probe(folder)):
            pass
    except OSError as error:
        raise PretrainedError(
            f"the weights cache {folder} cannot be written ({error.strerror or error}); "
            f"set {how_to_change} to a writable folder"
        ) from None


def _probe(folder: Path):
    import tempfile

    return tempfile.TemporaryFile(dir=folder)


# ---------------------------------------------------------------------------
# hashes
# ---------------------------------------------------------------------------


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_hash(path: Path) -> Optional[str]:
    try:
        text = _record_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def _record_hash(path: Path, digest: str) -> None:
    """Write ``<file>.sha256`` (``sha256sum`` format); a read-only cache just goes without."""
    with contextlib.suppress(OSError):
        with atomic_write(_record_path(path), mode="w", suffix=".partial") as stream:
            stream.write(f"{digest}  {path.name}\n")


def _normalise_hash(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise PretrainedError(f"{what} must be 64 hexadecimal digits (a SHA-256), got {value!r}")
    return text


def _cached_file_problem(path: Path, expected: Optional[str], size: Optional[int]) -> Optional[str]:
    """Why the cached ``path`` is not the file it should be, or None (recording its hash on first use)."""
    if size is not None and path.stat().st_size != size:
        return f"the cached file {path} has {path.stat().st_size:,} bytes, the published file {size:,}"
    actual = sha256_of(path)
    if expected is not None and actual != expected:
        return f"the cached file {path} has SHA-256 {actual}, expected {expected}"
    recorded = _recorded_hash(path)
    if recorded is not None and actual != recorded:
        return (
            f"the cached file {path} changed since it was downloaded (SHA-256 {actual}, recorded {recorded} "
            f"in {_record_path(path).name})"
        )
    if recorded is None:
        _record_hash(path, actual)
    return None


# ---------------------------------------------------------------------------
# download
# ---------------------------------------------------------------------------


def _by_hand(url: str, target: Path) -> str:
    return (
        f"To install it by hand, download {url} on a machine with internet access and copy it to {target} "
        f"(or point {CACHE_ENV} / --cache-dir at the folder holding it)"
    )


@contextlib.contextmanager
def _exclusive(target: Path):
    """Hold ``.<name>.lock`` next to ``target`` while downloading it (POSIX; elsewhere a no-op).

    Whoever holds the lock owns every ``.partial`` file of ``target``: any
    found then is the leftover of a killed download and is removed.
    """
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        for leftover in target.parent.glob(f".{target.name}.*.partial"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        yield


def download(
    url: str, target: PathLike, sha256: Optional[str] = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` to ``target`` through a temporary file; verify ``sha256`` if given; rename.

    Records the file's SHA-256 next to it (``<target>.sha256``).  Raises
    :class:`PretrainedError` (and leaves nothing at ``target``, nor a
    temporary file) when the download fails or the checksum differs.
    """
    target = Path(target)
    sha256 = _normalise_hash(sha256, "sha256")
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target), atomic_write(target, suffix=".partial") as stream:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise PretrainedError(
                f"cannot download {url}: HTTP {error.code} {error.reason}. " + _by_hand(url, target)
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise PretrainedError(f"cannot download {url} (offline?): {reason}. " + _by_hand(url, target)) from None
        with response:
            total = response.headers.get("Content-Length")
            received = 0
            from tqdm import tqdm

            with tqdm(
                total=int(total) if total and total.isdigit() else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=target.name,
                disable=not progress,
                leave=False,
            ) as bar:
                try:
                    while True:
                        block = response.read(1 << 16)
                        if not block:
                            break
                        stream.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
                    raise PretrainedError(
                        f"download of {url} was interrupted: {error}. " + _by_hand(url, target)
                    ) from None
            if total and total.isdigit() and received != int(total):
                raise PretrainedError(
                    f"download of {url} is incomplete: got {received} of {total} bytes. " + _by_hand(url, target)
                )
        if sha256 is not None and digest.hexdigest() != sha256:
            raise PretrainedError(
                f"checksum mismatch for {url}: SHA-256 {digest.hexdigest()}, expected {sha256}. "
                "The file was not kept. " + _by_hand(url, target)
            )
    _record_hash(target, digest.hexdigest())
    return target


def _weights_of(model_name: Union[str, Weights, None], train_type: Optional[str], dataset: Optional[str]) -> Weights:
    if isinstance(model_name, Weights):
        return model_name
    try:
        return resolve_weights(model_name, train_type, dataset)
    except ValueError as error:
        if "." in str(model_name):
            raise PretrainedError(str(error)) from None
        raise PretrainedError(
            f"no published ReDimNet model {model_name!r} with dataset={dataset!r}, train_type={train_type!r}: {error}"
        ) from None


def checkpoint_path(
    model_name: Union[str, Weights, None] = None,
    train_type: Optional[str] = None,
    dataset: Optional[str] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    base_url: Optional[str] = None,
    progress: bool = True,
    check_hash: bool = True,
    sha256: Optional[str] = None,
) -> Path:
    """The cached file of published weights, downloaded first if needed, verified.

    ``model_name`` is a :class:`~redimnet.hub.registry.Weights`, a one-name form
    (``"b2.vox2-ft_lm"``) or an architecture with ``train_type``/``dataset``.
    ``sha256`` is a hash the file must have (checked in addition to the
    published one); ``check_hash=False`` skips every hash check.
    """
    weights = _weights_of(model_name, train_type, dataset)
    folder, how_to_change = _cache_folder(cache_dir)
    target = folder / weights.cache_name
    base = base_url or os.environ.get(BASE_URL_ENV) or weights.base_url
    url = base.rstrip("/") + "/" + weights.file_name
    wanted = _normalise_hash(sha256, "sha256")
    published = weights.sha256 if check_hash else None
    if wanted is not None and published is not None and wanted != published:
        raise PretrainedError(
            f"sha256={wanted} differs from the published SHA-256 of {weights.file_name} "
            f"({published}); check the value you passed"
        )
    expected = wanted or published
    if target.is_file():
        problem = _cached_file_problem(target, expected, weights.size) if check_hash else None
        if problem is None:
            return target
        warnings.warn(f"{problem}; downloading it again", stacklevel=3)
        _writable_folder(folder, how_to_change)
        try:
            return download(url, target, expected, progress=progress)
        except PretrainedError as error:
            raise PretrainedError(
                f"{problem}. Delete {target} (it is downloaded again on the next load) or "
                f"replace it with the published file {url}; downloading it again just now "
                f"failed: {error}"
            ) from None
    _writable_folder(folder, how_to_change)
    return download(url, target, expected, progress=progress)


def _architecture_of(config) -> dict:
    describe = getattr(config, "architecture_dict", None)
    return describe() if describe is not None else config.to_dict()


def load_weights(
    weights: Union[str, Weights],
    *,
    cache_dir: Optional[PathLike] = None,
    base_url: Optional[str] = None,
    progress: bool = True,
    check_hash: bool = True,
    sha256: Optional[str] = None,
    map_location="cpu",
    max_parameters: Optional[int] = None,
):
    """The network of published ``weights`` (a registry entry or its name), in eval mode.

    Downloads once and caches (see the module documentation).  Emits
    :class:`NonCommercialLicenseWarning` for weights that are not MIT-licensed.
    Raises :class:`PretrainedError` when the file cannot be had or is not the
    network it is published as, and :class:`redimnet.CheckpointError` when it
    cannot be read.  ``max_parameters`` overrides the loader's size ceiling.
    """
    if not isinstance(weights, Weights):
        weights = _weights_of(weights, None, None)
    if not weights.commercial_use:
        warnings.warn(
            f"ReDimNet {weights.file_name} is licensed {weights.license} (VoxBlink2 terms): non-commercial use only",
            NonCommercialLicenseWarning,
            stacklevel=2,
        )
    path = checkpoint_path(
        weights, cache_dir=cache_dir, base_url=base_url, progress=progress, check_hash=check_hash, sha256=sha256
    )
    arch = weights.architecture
    from ..models.checkpoint import load_checkpoint

    ceiling: Union[int, str] = "default" if max_parameters is None else max_parameters
    model = load_checkpoint(path, map_location=map_location, max_parameters=ceiling)
    if arch.buildable:
        found, expected = _architecture_of(model.config), _architecture_of(arch.config)
        if found != expected:
            differences = ", ".join(
                f"{key}={found.get(key)!r} (expected {expected.get(key)!r})"
                for key in sorted(set(found) | set(expected), key=str)
                if found.get(key) != expected.get(key)
            )
            raise PretrainedError(
                f"{path} is not the {arch.name} network that {weights.name} is published as: "
                f"{differences}. Delete the file so that it is downloaded again, or check "
                f"{BASE_URL_ENV} / base_url"
            )
    return model


def from_pretrained(
    model_name: Optional[str] = None, train_type: Optional[str] = None, dataset: Optional[str] = None, **options
):
    """The published model ``model_name`` / ``train_type`` / ``dataset`` (the original hub's arguments).

    A thin alias of :func:`load_weights` (also reachable as ``redimnet.load("b2.vox2-ft_lm")``);
    ``train_type`` and ``dataset`` default to the architecture's default weights.

    Args:
        model_name: the architecture (``"b0"`` ... ``"b6"``, ``"M"``, ``"S"``, or another family's), or
            weights (``"b2.vox2-ft_lm"``); None for :data:`~redimnet.hub.registry.DEFAULT_WEIGHTS`
            (with ``train_type`` / ``dataset``: those of its architecture).
        train_type: ``"ptn"``, ``"ft_lm"``, ``"ft_mix"``, ... (None: the default weights' type).
        dataset: ``"vox2"``, ``"vb2+vox2+cnc"``, ... (None: the default weights' dataset).
        **options: download and loading options of :func:`load_weights`.

    Returns:
        The network with the published weights, in eval mode.
    """
    return load_weights(_weights_of(model_name, train_type, dataset), **options)


def copy_into_cache(
    source: PathLike,
    model_name: str,
    train_type: Optional[str] = None,
    dataset: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> Path:
    """Place a hand-downloaded release file into the cache (checked against its SHA-256 when known)."""
    weights = _weights_of(model_name, train_type, dataset)
    folder, how_to_change = _cache_folder(cache_dir)
    target = folder / weights.cache_name
    digest = sha256_of(source)
    if weights.sha256 is not None and digest != weights.sha256:
        raise PretrainedError(f"{source} is not {weights.file_name}: its SHA-256 differs from the published one")
    _writable_folder(folder, how_to_change)
    with open(source, "rb") as original, atomic_write(target, suffix=".partial") as stream:
        shutil.copyfileobj(original, stream)
    _record_hash(target, digest)
    return target


def build(name: str, weights: Optional[str] = None, **overrides):
    """A network by name: random weights, or published ones.

    * ``build("b2")`` -- a randomly initialised b2; keyword options override
      its configuration (``build("b2", num_classes=5994)``).
    * ``build("b2", weights="vox2-ft_lm")`` or ``build("b2.vox2-ft_lm")`` --
      the published weights, downloaded once and cached (see :func:`load`;
      download options such as ``cache_dir`` may be passed).

    Args:
        name: an architecture (``"b2"``), or architecture and weights (``"b2.vox2-ft_lm"``).
        weights: the weights' tag (``"vox2-ft_lm"``); None for random weights unless ``name`` names some.
        **overrides: configuration options (random weights) or download options (published weights).

    Returns:
        The network (a ``torch.nn.Module``): training mode when random, eval mode with published weights.

    Raises:
        UnknownModelError: unknown names, and architectures published only inside their
            weight files (M, S) when no weights are named.

    >>> build("b0", embed_dim=256).config.embed_dim
    256
    """
    text = str(name)
    if weights is not None or "." in text:
        return load(text if weights is None else f"{text}.{weights}", **overrides)
    arch = get_architecture(text)
    config = arch.config
    if overrides:
        config = config.replace(**overrides)
    return get_family(arch.family).build(config)


def load(name: Optional[str] = None, **options):
    """The published model ``name`` (see :func:`get_weights`; default :data:`DEFAULT_WEIGHTS`), in eval mode.

    Args:
        name: weights such as ``"b2.vox2-ft_lm"``, or an architecture for its default weights;
            None for :data:`DEFAULT_WEIGHTS`.
        **options: passed to :func:`redimnet.hub.pretrained.load_weights`: ``cache_dir``,
            ``base_url``, ``progress``, ``sha256``, ``check_hash``, ``map_location``.

    Returns:
        The network with the published weights, in eval mode.
    """
    return load_weights(resolve_weights(name), **options)
