"""Matplotlib set-up shared by the post-stage charts (headless Agg backend, one finishing routine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: the post-stage runs on headless cluster nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig: Any, ax: Any, path: Path, *, xlabel: str, ylabel: str, xscale: str | None = "log",
                  yscale: str | None = "log", grid_which: str = "both", legend_fontsize: int = 8,
                  legend_title: str | None = None) -> Path:
    """Axes scales, labels, grid and legend of every post-stage chart; saves and closes ``fig``."""
    if xscale == "log2":
        ax.set_xscale("log", base=2)
    elif xscale:
        ax.set_xscale(xscale)
    if yscale:
        ax.set_yscale(yscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which=grid_which, alpha=0.3)
    ax.legend(fontsize=legend_fontsize, title=legend_title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
