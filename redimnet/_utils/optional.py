"""Optional dependencies: which extra of ``redimnet`` provides each, and one clear error when one is missing.

The package's core needs only torch, numpy, soundfile, soxr and tqdm.  Other
features import their library when used; a missing one raises
:class:`MissingDependencyError` saying which extra to install, e.g.
``pip install "redimnet[train]"``.  The command line turns any
``ModuleNotFoundError`` for a module listed in :data:`EXTRAS` into that same
message (exit status 2), so every verb behaves alike.
"""

import importlib
from typing import Optional

from ..errors import RedimnetError

#: top-level module -> (package to install, extra of redimnet that provides it)
EXTRAS = {
    "yaml": ("PyYAML", "train"),
    "matplotlib": ("matplotlib", "plot"),
    "kaldiio": ("kaldiio", "kaldi"),
    "onnx": ("onnx", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "openvino": ("openvino", "int8"),
    "silero_vad": ("silero-vad", "diarize"),
    "starlette": ("starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "python_multipart": ("python-multipart", "serve"),
    "usearch": ("usearch", "search"),
    "psycopg": ("psycopg[binary]", "postgres"),
}


class MissingDependencyError(RedimnetError, ImportError):
    """A feature needs an optional package that is not installed."""


def install_hint(module: Optional[str], purpose: Optional[str] = None) -> Optional[str]:
    """The message for a missing ``module`` (a top-level name such as ``"yaml"``), or None if it is not optional."""
    top = (module or "").split(".")[0]
    if top not in EXTRAS:
        return None
    package, extra = EXTRAS[top]
    what = purpose or "this command"
    return f'{what} needs {package}, which is not installed: pip install "redimnet[{extra}]"'


def require(module: str, purpose: str):
    """Import and return ``module``, or raise :class:`MissingDependencyError` naming the extra to install.

    ``purpose`` starts the message, e.g. ``"Kaldi ark/scp output"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken: not a missing extra
        hint = install_hint(module, purpose) or f"{purpose} needs {module}, which is not installed"
        raise MissingDependencyError(hint) from None
