"""Published ReDimNet weights: the table of releases, download, cache, checksum.

``from_pretrained("b2", "ft_lm", "vox2")`` does what
``torch.hub.load("IDRnD/ReDimNet", "ReDimNet", model_name="b2", train_type="ft_lm", dataset="vox2")``
does for the original code: it fetches ``b2-vox2-ft_lm.pt`` from the
project's GitHub release once, keeps it in a cache folder and loads it.

* Cache folder: ``cache_dir`` argument, else ``$REDIMNET_CACHE``, else
  ``torch.hub.get_dir()/checkpoints`` (the folder ``torch.hub`` itself
  downloads to, so a file the original ``torch.hub.load`` fetched is reused).
* Base URL: ``base_url`` argument, else ``$REDIMNET_BASE_URL``, else the
  GitHub release.
* Downloads go to a temporary name in the cache folder, are checked against
  the SHA-256 when it is known, and only then renamed into place: an
  interrupted or failed download never leaves a partial file behind.
"""

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .checkpoint import load_checkpoint
from .errors import RedimnetError
from .fileio import atomic_write

PathLike = Union[str, os.PathLike]

RELEASE_URL = "https://github.com/IDRnD/ReDimNet/releases/download/latest/"
CACHE_ENV = "REDIMNET_CACHE"
BASE_URL_ENV = "REDIMNET_BASE_URL"

MIT = "MIT"
CC_BY_NC_SA = "CC BY-NC-SA 4.0"


class PretrainedError(RedimnetError):
    """Published weights cannot be found, downloaded or verified."""


class NonCommercialLicenseWarning(UserWarning):
    """The loaded weights may only be used for non-commercial purposes."""


@dataclass(frozen=True)
class Release:
    """One published checkpoint."""

    model_name: str
    dataset: str
    train_type: str
    license: str
    eer: Optional[Tuple[float, float, float]] = None
    """Published Vox1-O / Vox1-E / Vox1-H EER (%), where the authors give it."""
    sha256: Optional[str] = None
    size: Optional[int] = None

    @property
    def file_name(self) -> str:
        return f"{self.model_name}-{self.dataset}-{self.train_type}.pt"

    @property
    def commercial_use(self) -> bool:
        return self.license == MIT


_FT_LM_EER = {  # Vox1-O / E / H, LM fine-tuned, no AS-Norm (paper and release notes)
    "b0": (1.16, 1.25, 2.20), "b1": (0.85, 0.97, 1.73), "b2": (0.57, 0.76, 1.32), "b3": (0.50, 0.73, 1.33),
    "b4": (0.51, 0.68, 1.26), "b5": (0.43, 0.61, 1.08), "b6": (0.40, 0.55, 1.05),
}
_HASHES = {
    "b2-vox2-ft_lm.pt": ("c9b6bb2f6747caa28a41eaf2e372d66b0d1563baef186d18f5e99abd5e71e06f", 20_582_650),
    "b2-vox2-ptn.pt": ("c18a42926878bc8ac079623fbf36f0bc8054cda1199e96fbe1a3f8e131796647", 20_581_530),
    "b5-vox2-ft_lm.pt": ("8b0c11bbf5a3a8bb39e5c072c4192d0b694d8c447cf126d4cd3c7346a04b39c8", 31_174_382),
}


def _table() -> Dict[Tuple[str, str, str], Release]:
    rows = []
    for name in ("b0", "b1", "b2", "b3", "b4", "b5", "b6"):
        rows.append(Release(name, "vox2", "ptn", MIT))
        rows.append(Release(name, "vox2", "ft_lm", MIT, _FT_LM_EER[name]))
    rows += [
        Release("M", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.835, 0.745, 1.284)),
        Release("S", "vb2+vox2+cnc", "ft_mix", CC_BY_NC_SA, (0.936, 0.874, 1.510)),
        Release("M", "vb2", "ptn", CC_BY_NC_SA),
        Release("S", "vb2", "ptn", CC_BY_NC_SA),
    ]
    table = {}
    for row in rows:
        sha, size = _HASHES.get(row.file_name, (None, None))
        table[(row.model_name, row.dataset, row.train_type)] = Release(
            row.model_name, row.dataset, row.train_type, row.license, row.eer, sha, size)
    return table


RELEASES: Dict[Tuple[str, str, str], Release] = _table()


def list_pretrained() -> List[Release]:
    """Every published (model_name, dataset, train_type) combination."""
    return list(RELEASES.values())


def find_release(model_name: str, train_type: str = "ft_lm", dataset: str = "vox2") -> Release:
    """The release entry for a combination (model names are case-insensitive)."""
    for (name, data, train), release in RELEASES.items():
        if name.lower() == str(model_name).lower() and data == dataset and train == train_type:
            return release
    available = "; ".join(f"{r.model_name} {r.dataset} {r.train_type}" for r in RELEASES.values())
    raise PretrainedError(f"no published ReDimNet model {model_name!r} with dataset={dataset!r}, "
                          f"train_type={train_type!r}. Published (model dataset train_type): {available}")


def default_cache_dir() -> Path:
    """``$REDIMNET_CACHE``, else ``torch.hub.get_dir()/checkpoints``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(url: str, target: Path) -> str:
    return (f"To install it by hand, download {url} on a machine with internet access and copy it to {target} "
            f"(or point {CACHE_ENV} / cache_dir at the folder holding it)")


def download(url: str, target: PathLike, sha256: Optional[str] = None, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` through a temporary file; verify ``sha256`` if given; rename.

    Raises :class:`PretrainedError` (and leaves nothing at ``target``, nor a
    temporary file) when the download fails or the checksum differs.
    """
    target = Path(target)
    digest = hashlib.sha256()
    with atomic_write(target, suffix=".partial") as stream:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise PretrainedError(f"cannot download {url}: HTTP {error.code} {error.reason}. "
                                  + _by_hand(url, target)) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise PretrainedError(f"cannot download {url} (offline?): {reason}. "
                                  + _by_hand(url, target)) from None
        with response:
            total = response.headers.get("Content-Length")
            received = 0
            from tqdm import tqdm

            with tqdm(total=int(total) if total and total.isdigit() else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=target.name, disable=not progress, leave=False) as bar:
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
                    raise PretrainedError(f"download of {url} was interrupted: {error}. "
                                          + _by_hand(url, target)) from None
            if total and total.isdigit() and received != int(total):
                raise PretrainedError(f"download of {url} is incomplete: got {received} of {total} bytes. "
                                      + _by_hand(url, target))
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise PretrainedError(f"checksum mismatch for {url}: SHA-256 {digest.hexdigest()}, expected {sha256}. "
                                  "The file was not kept. " + _by_hand(url, target))
    return target


def checkpoint_path(model_name: str = "b2", train_type: str = "ft_lm", dataset: str = "vox2", *,
                    cache_dir: Optional[PathLike] = None, base_url: Optional[str] = None,
                    progress: bool = True, check_hash: bool = True) -> Path:
    """The cached file of a published model, downloading it first if needed."""
    release = find_release(model_name, train_type, dataset)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / release.file_name
    base = base_url or os.environ.get(BASE_URL_ENV) or RELEASE_URL
    url = base.rstrip("/") + "/" + release.file_name
    expected = release.sha256 if check_hash else None
    if target.is_file():
        if expected is not None:
            actual = sha256_of(target)
            if actual != expected:
                raise PretrainedError(f"the cached file {target} has SHA-256 {actual}, expected {expected} "
                                      "(damaged or replaced). Delete it to download it again. " + _by_hand(url, target))
        return target
    return download(url, target, expected, progress=progress)


def from_pretrained(model_name: str = "b2", train_type: str = "ft_lm", dataset: str = "vox2", *,
                    cache_dir: Optional[PathLike] = None, base_url: Optional[str] = None,
                    progress: bool = True, check_hash: bool = True, map_location="cpu"):
    """A published ReDimNet model (``redimnet.ReDimNet``, eval mode), downloaded once and cached.

    Emits :class:`NonCommercialLicenseWarning` for the CC BY-NC-SA 4.0
    (VoxBlink2) models M and S.  Raises :class:`PretrainedError` when the file
    cannot be had, and :class:`redimnet.CheckpointError` when it cannot be read.
    """
    release = find_release(model_name, train_type, dataset)
    if not release.commercial_use:
        warnings.warn(f"ReDimNet {release.file_name} is licensed {release.license} (VoxBlink2 terms): "
                      "non-commercial use only", NonCommercialLicenseWarning, stacklevel=2)
    path = checkpoint_path(release.model_name, train_type, dataset, cache_dir=cache_dir, base_url=base_url,
                           progress=progress, check_hash=check_hash)
    return load_checkpoint(path, map_location=map_location)


def copy_into_cache(source: PathLike, model_name: str, train_type: str = "ft_lm", dataset: str = "vox2",
                    cache_dir: Optional[PathLike] = None) -> Path:
    """Place a hand-downloaded release file into the cache (checked against its SHA-256 when known)."""
    release = find_release(model_name, train_type, dataset)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / release.file_name
    if release.sha256 is not None and sha256_of(source) != release.sha256:
        raise PretrainedError(f"{source} is not {release.file_name}: its SHA-256 differs from the published one")
    with open(source, "rb") as original, atomic_write(target, suffix=".partial") as stream:
        shutil.copyfileobj(original, stream)
    return target
