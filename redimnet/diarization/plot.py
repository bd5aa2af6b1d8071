"""Timeline figures: one row per speaker, the reference above the hypothesis when given.

Needs matplotlib (``pip install "redimnet[plot]"``).
"""

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from .._utils.optional import require
from .segments import Segment

PathLike = Union[str, os.PathLike]


def plot_timeline(
    path: PathLike,
    hypothesis: Sequence[Segment],
    reference: Optional[Sequence[Segment]] = None,
    title: str = "",
    duration: Optional[float] = None,
) -> Path:
    """Draw the segments as a PNG timeline at ``path``."""
    matplotlib = require("matplotlib", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for prefix, segments in (("ref", reference), ("hyp", hypothesis)):
        if segments is None:
            continue
        for label in dict.fromkeys(s.label for s in sorted(segments)):
            rows.append(
                (
                    f"{prefix} {label}" if reference is not None else label,
                    [(s.start, s.duration) for s in segments if s.label == label],
                    prefix,
                )
            )
    end = duration or max([s.end for s in hypothesis] + [s.end for s in reference or []] + [1.0])
    figure, axes = plt.subplots(figsize=(min(40, 4 + end / 6), 0.9 + 0.35 * max(1, len(rows))))
    colours = plt.get_cmap("tab10")
    for index, (_name, spans, prefix) in enumerate(rows):
        axes.broken_barh(
            spans, (len(rows) - index - 0.8, 0.6), facecolors=colours(index % 10) if prefix == "hyp" else "0.45"
        )
    axes.set_yticks([len(rows) - i - 0.5 for i in range(len(rows))], [r[0] for r in rows])
    axes.set_xlim(0, end)
    axes.set_ylim(0, max(1, len(rows)))
    axes.set_xlabel("time (s)")
    if title:
        axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
