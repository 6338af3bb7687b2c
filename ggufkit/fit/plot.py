"""`fit --plot`: memory against mean KLD, the Pareto front joined, the budgets drawn, the choice marked."""

from __future__ import annotations

from pathlib import Path

from ggufkit.evaluate.plot import apart, pyplot, save
from ggufkit.fit.result import FitResult

MIB = 2**20


def plot(result: FitResult, out: Path) -> None:
    apart(draw, result, out)


def draw(result: FitResult, out: Path) -> None:
    plt = pyplot(out)
    shown = [r for r in result.rows if r.memory_bytes is not None and r.mean_kld]  # log scale: KLD > 0
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    front = sorted((r for r in shown if r.pareto), key=lambda r: r.memory_bytes or 0)
    if front:
        ax.plot([r.memory_bytes / MIB for r in front], [r.mean_kld for r in front], "-", color="tab:blue",
                alpha=0.5, label="Pareto front")
    for i, r in enumerate(sorted(shown, key=lambda r: r.memory_bytes or 0)):
        x, y = r.memory_bytes / MIB, r.mean_kld
        chosen = r.type == result.choice
        ax.plot(x, y, "*" if chosen else "o", markersize=14 if chosen else 6,
                color="tab:red" if chosen else ("tab:blue" if r.fits else "tab:gray"),
                label="choice" if chosen else None)
        # neighbours in memory get their labels above and below in turn, so close points stay readable
        ax.annotate(r.type, (x, y), textcoords="offset points", xytext=(5, 5 if i % 2 == 0 else -12), fontsize=8)
    b = result.budgets
    if b.max_memory is not None:
        ax.axvline(b.max_memory / MIB, color="tab:orange", linestyle="--", label="--max-memory")
    if b.max_kld is not None and b.max_kld > 0:
        ax.axhline(b.max_kld, color="tab:purple", linestyle="--", label="--max-kld")
    ax.set_yscale("log")
    ax.margins(x=0.12, y=0.15)
    ax.set_xlabel("memory (MiB): peak resident" + (" + GPU" if result.gpu_layers else "") + f" at --ctx {result.ctx}")
    ax.set_ylabel("mean KL-divergence from the source (nats)")
    name = Path(result.source).name
    ax.set_title(f"{name}: {result.chunks} x {result.ctx} tokens" if result.chunks else name, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    save(plt, fig, out)
