"""Size against quality, one labelled point per model, with matplotlib (the optional `plot` extra).

Every chart is drawn apart (`apart`): in a fresh Python that never loads llama.cpp (GGUFKIT_NO_LLAMA=1,
loadorder.py). In a process holding a CUDA build of llama.cpp, matplotlib's C++ extensions crashed
(SIGSEGV in font_manager.addfont, FreeType's, as pyplot loaded: `eval --plot` and `fit --plot` on an
H100, after the models had run; docs/gpu.md "Load order"). Apart, neither library can harm the other,
and a failure costs the chart, never the figures already printed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
from ggufkit.evaluate.perplexity import EvalResult
from ggufkit.fsutil import atomic_output


def plot(r: EvalResult, out: Path) -> None:
    """KLD against file size (PPL when there is only the base); PNG or SVG by the file's suffix."""
    apart(draw, r, out)


def draw(r: EvalResult, out: Path) -> None:
    plt = pyplot(out)
    one = len(r.models) == 1
    xs = [m.file_size / 2**20 for m in r.models]
    ys = [m.ppl if one else (m.vs_base["kld_mean"] if m.vs_base else 0.0) for m in r.models]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(xs, ys, "o")
    # neighbours in size get their labels right and left in turn, so close points stay readable
    for i, (x, y, label) in enumerate(sorted(zip(xs, ys, labels(r)))):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 0) if i % 2 == 0 else (-6, 0),
                    ha="left" if i % 2 == 0 else "right", va="center", fontsize=8)
    ax.margins(x=0.12, y=0.1)
    if not one and all(y > 0 for y in ys[1:]):
        ax.set_yscale("symlog", linthresh=min(y for y in ys[1:]) / 2)
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("perplexity" if one else "mean KL-divergence from the base (nats)")
    ax.set_title(f"{'perplexity' if one else 'KL-divergence'} on {r.chunks} x {r.ctx} tokens", fontsize=10)
    ax.grid(True, alpha=0.3)
    save(plt, fig, out)


def check_plot(out: Path) -> None:
    """Before the work: `out` is a .png or .svg and matplotlib is installed (found, not imported: its C++
    extensions are loaded only once the models are, docs/gpu.md "Load order")."""
    import importlib.util

    if out.suffix.lower() not in (".png", ".svg"):
        raise BadInputError("--plot writes .png or .svg files", out)
    if importlib.util.find_spec("matplotlib") is None:
        raise BadInputError("--plot needs matplotlib: pip install 'ggufkit[plot]' (make install does)")


def pyplot(out: Path):
    """matplotlib.pyplot, drawing off-screen, once `out` is known to be a .png or .svg; one line if missing."""
    if out.suffix.lower() not in (".png", ".svg"):
        raise BadInputError("--plot writes .png or .svg files", out)
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: write the file only
        import matplotlib.pyplot as plt
    except ImportError:
        raise BadInputError("--plot needs matplotlib: pip install 'ggufkit[plot]' (make install does)") from None
    return plt


def save(plt, fig, out: Path) -> None:
    """The figure to `out` (whole or not at all), in the format its suffix names."""
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lower().lstrip("."))
    plt.close(fig)


def labels(r: EvalResult) -> list[str]:
    """Names short enough to read on a chart: what the file names do not share (`Q4_K_M` of
    `model-Q4_K_M.gguf` beside `model.F16.gguf`, as `quantize` names children), the base marked."""
    from ggufkit.names import short_names

    return [f"{short} (base)" if m.vs_base is None else short
            for short, m in zip(short_names([m.path for m in r.models]), r.models)]



CHART_CHILD = "ggufkit.evaluate.chart_child"


def apart(draw_fn: Callable[[Any, Path], None], data: Any, out: Path) -> None:
    """`draw_fn(data, out)` in a fresh Python without llama.cpp (see the module's docstring)."""
    import base64
    import pickle

    from ggufkit.errors import GgufkitError, LlamaFailure
    from ggufkit.runtime.child import StartedChild, run_child

    request = {"draw": f"{draw_fn.__module__}:{draw_fn.__name__}", "out": str(out),
               "data": base64.b64encode(pickle.dumps(data)).decode()}
    try:
        run_child(CHART_CHILD, request, None, str(out), StartedChild(CHART_CHILD, {"GGUFKIT_NO_LLAMA": "1"}))
    except LlamaFailure as e:  # the drawing process died: no llama.cpp in it, so not llama.cpp's failure
        raise GgufkitError(f"could not draw the chart: {e.message.removeprefix('llama.cpp failed ')}", out) from None
