"""Peak memory of one piece of code, measured in a fresh Python process (Linux).

The peak resident size of the test process itself (``ru_maxrss``) is useless for this: it is the
highest point of the whole pytest run, so an allocation below an earlier peak is invisible.  A
:class:`MemoryProbe` starts its own interpreter once (imports done), and for each call resets the
kernel's peak counter (``/proc/self/clear_refs``), runs the code, and reports how far the peak
(``VmHWM``) rose above the resident size just before.
"""

import json
import subprocess
import sys
from typing import Optional, Tuple

import pytest

_CHILD = r"""
import json, sys

def _kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not in /proc/self/status")

exec(sys.argv[1], globals())
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak resident size starts again from the current one
    before = _kib("VmRSS")
    raised = None
    try:
        exec(request["code"], dict(globals(), **request["values"]))
    except Exception as error:
        raised = [type(error).__name__, str(error)[:500]]
    peak = _kib("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024, "raised": raised}), flush=True)
"""


def _peak_counter_resettable() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        with open("/proc/self/status") as status:
            return any(line.startswith("VmHWM:") for line in status)
    except OSError:
        return False


class MemoryProbe:
    """A fresh interpreter that ran ``setup`` (imports) and measures the peak memory each snippet adds."""

    def __init__(self, setup: str):
        if not _peak_counter_resettable():
            pytest.skip("needs Linux's /proc/self/clear_refs to measure peak memory")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, setup],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self._read()) == {"ready": True}

    def _read(self) -> str:
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the memory probe ended (exit status {self._process.wait()})")
        return line

    def run(self, code: str, **values) -> Tuple[float, Optional[Tuple[str, str]]]:
        """``(MB the peak rose by, (exception name, message) or None)`` for ``code`` run with ``values``."""
        self._process.stdin.write(json.dumps({"code": code, "values": values}) + "\n")
        self._process.stdin.flush()
        answer = json.loads(self._read())
        return answer["peak_mb"], (tuple(answer["raised"]) if answer["raised"] else None)

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)
