"""Draw docs/comparison.png: Vox1-O EER against GMACs for ReDimNet, ReDimNet2 and peer models.

The numbers come from the data table docs/data/models.csv (published values
from the ReDimNet paper and the ReDimNet2 README); nothing is typed in by hand
here.  Bubble area is proportional to the parameter count; ReDimNet sizes are
joined by lines, one line without and one with AS-Norm score normalisation,
and ReDimNet2's sizes by a third.

    python scripts/plot_comparison.py [--data docs/data/models.csv] [-o docs/comparison.png]
"""

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"ReDimNet": "#e8718d", "ReDimNet2": "#9b59d0", "TDNN": "#7fbf8e", "ResNet": "#5fc0ef", "Other": "#eba24a"}
REQUIRED = ("model", "family", "params_m", "gmacs", "gmacs_estimated", "large_margin", "as_norm", "eer_vox1_o")


def read_table(path: Path) -> list:
    """Rows of the data table with numeric fields converted; a clear error for a bad row."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                for key in ("params_m", "gmacs", "eer_vox1_o"):
                    row[key] = float(row[key])
            except ValueError as error:
                raise SystemExit(f"{path}:{line}: {error}") from None
            if row["family"] not in COLOURS:
                raise SystemExit(f"{path}:{line}: family {row['family']!r} is not one of {', '.join(COLOURS)}")
            rows.append(row)
    return rows


def bubble(params_m: float) -> float:
    return 12.0 * params_m  # marker area in points^2


def plot(rows: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 7.2), dpi=130)
    ax.set_facecolor("#eef0f6")
    ax.grid(True, which="both", color="white", linewidth=1.0)
    ax.set_axisbelow(True)
    for as_norm, style, label in (
        ("no", ":", "ReDimNet, large-margin fine-tuned"),
        ("yes", "--", "ReDimNet, + AS-Norm"),
    ):
        series = sorted(
            (r for r in rows if r["family"] == "ReDimNet" and r["as_norm"] == as_norm), key=lambda r: r["gmacs"]
        )
        ax.plot(
            [r["gmacs"] for r in series],
            [r["eer_vox1_o"] for r in series],
            style,
            color="#8b1538",
            linewidth=1.4,
            label=label,
            zorder=2,
        )
    series = sorted((r for r in rows if r["family"] == "ReDimNet2"), key=lambda r: r["gmacs"])
    if series:
        ax.plot(
            [r["gmacs"] for r in series],
            [r["eer_vox1_o"] for r in series],
            "-",
            color="#5b2a86",
            linewidth=1.4,
            label="ReDimNet2, large-margin fine-tuned",
            zorder=2,
        )
    for row in rows:
        estimated = row["gmacs_estimated"] == "yes"
        ax.scatter(
            row["gmacs"],
            row["eer_vox1_o"],
            s=bubble(row["params_m"]),
            color=COLOURS[row["family"]],
            edgecolors="#444444",
            linewidths=0.8,
            alpha=0.9,
            zorder=3,
            hatch="///" if estimated else None,
        )
        name = row["model"] + ("*" if estimated else "") + (" (AS)" if row["as_norm"] == "yes" else "")
        ax.annotate(
            name,
            (row["gmacs"], row["eer_vox1_o"]),
            textcoords="offset points",
            xytext=(7, 4),
            fontsize=7.5,
            color="#2a3f5f",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks_x = [0.3, 0.5, 1, 2, 5, 10, 20, 50, 100, 200]
    ax.set_xticks(ticks_x, [f"{t:g}" for t in ticks_x])
    ticks_y = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2]
    ax.set_yticks(ticks_y, [f"{t:g}" for t in ticks_y])
    ax.minorticks_off()
    ax.set_xlim(0.2, 400)
    ax.set_xlabel("complexity, GMACs (log scale)", fontsize=12)
    ax.set_ylabel("Vox1-O EER, % (log scale)", fontsize=12)
    ax.set_title(
        "Speaker verification on VoxCeleb1-O: error vs compute (published numbers, VoxCeleb2 training)", fontsize=12
    )
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    for family, colour in COLOURS.items():
        handles.append(
            Line2D([], [], marker="o", linestyle="", markersize=9, markerfacecolor=colour, markeredgecolor="#444444")
        )
        labels.append(family)
    for size in (2, 7, 27):
        handles.append(plt.scatter([], [], s=bubble(size), color="#aaaaaa", edgecolors="#444444"))
        labels.append(f"{size}M parameters")
    ax.legend(handles, labels, loc="upper right", fontsize=8, labelspacing=1.3, borderpad=1.0, framealpha=0.9)
    fig.text(
        0.01,
        0.01,
        "(AS) = with AS-Norm; * = GMACs estimated by the ReDimNet authors. "
        "Source: docs/data/models.csv (ReDimNet paper, arXiv 2407.18223; ReDimNet2 README).",
        fontsize=7.5,
        color="#555555",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "docs" / "data" / "models.csv")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "comparison.png")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: data table not found")
    plot(read_table(args.data), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
