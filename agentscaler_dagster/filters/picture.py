"""The filter funnel as a picture (for the asset's metadata and the report)."""

from __future__ import annotations

from pathlib import Path

_LABELS = {
    "input": "input",
    "validity": "1. validity control",
    "state_alignment": "2. state alignment",
    "exact_match": "3. exact match",
}


def funnel_picture(funnel: dict[str, int], path: str | Path, *, title: str = "Trajectory filter funnel") -> Path:
    """Horizontal bars, one per stage, with the count and the share of the input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(funnel)
    counts = [int(funnel[k]) for k in keys]
    total = counts[0] if counts else 0
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(keys) + 1.2), dpi=100)
    y = list(range(len(keys)))[::-1]
    ax.barh(y, counts, color=["#7f7f7f"] + ["#1f77b4"] * (len(keys) - 1))
    ax.set_yticks(y)
    ax.set_yticklabels([_LABELS.get(k, k) for k in keys])
    ax.set_xlim(0, max(counts + [1]) * 1.3)
    for yi, count in zip(y, counts):
        share = f"{100 * count / total:.1f}%" if total else "-"
        ax.text(count, yi, f"  {count} ({share})", va="center")
    ax.set_xlabel("trajectories")
    ax.set_title(title)
    fig.tight_layout()
    # no Software stamp: the bytes depend on the funnel, not on the matplotlib version
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
