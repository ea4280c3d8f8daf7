"""The verdict's chart: each backend's time on the same shadowed requests, side by side (matplotlib)."""

from __future__ import annotations

from pathlib import Path

COLOURS = {"supabase": "#3ecf8e", "convex": "#ee342f"}  # the colours compare's chart uses


def draw_verdict_chart(times_ms: dict[str, list[float]], path: Path, title: str) -> None:
    """Two histograms on the same log bins and scale (one per backend), then both cumulative curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    everything = np.concatenate([np.asarray(v, dtype=float) for v in times_ms.values()])
    low = max(float(everything.min()), 0.01)
    bins = np.geomspace(low, max(float(everything.max()), low * 1.01), 50)
    for axis, backend in zip(axes[:2], ("supabase", "convex"), strict=True):
        values = np.asarray(times_ms[backend], dtype=float)
        axis.hist(values, bins=bins, color=COLOURS[backend], alpha=0.8)
        for p, style in ((50, "--"), (95, ":")):
            axis.axvline(np.percentile(values, p), color="#333333", linestyle=style, linewidth=1)
        axis.set(xscale="log", xlabel="backend time (ms, log scale)", ylabel="shadowed requests",
                 title=f"{backend}: p50 {np.percentile(values, 50):.2f} ms, p95 {np.percentile(values, 95):.2f} ms")
    axes[1].sharey(axes[0])
    cdf = axes[2]
    for backend in ("supabase", "convex"):
        values = np.sort(np.asarray(times_ms[backend], dtype=float))
        cdf.plot(values, np.arange(1, values.size + 1) / values.size, color=COLOURS[backend], label=backend)
    cdf.set(xscale="log", xlabel="backend time (ms, log scale)", ylabel="fraction of requests",
            title="Cumulative (same requests)")
    cdf.legend(loc="lower right")
    cdf.grid(alpha=0.3)
    for axis in axes:
        # Plain millisecond labels at 1, 2, 5 per decade: matplotlib's own minor log labels overlap.
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
