"""The PNG plots of a benchmark run (benchmarks/*.png beside BENCHMARKS.md).
"""

from __future__ import annotations

import math
from pathlib import Path

from streams.bench.results import TARGET_P99_MS, BenchResult, _quantile


def plots(result: BenchResult, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []

    if result.latency:
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, s in enumerate(result.latency):
            colour = f"C{i}"
            for values, style, label in ((s.latencies_ms, "-", f"report → order, {s.rate}/s"),
                                         (s.pipe_ms, ":", f"raw pipe, {s.rate}/s")):
                if values:
                    ordered = sorted(values)
                    ax.step(ordered, [(k + 1) / len(ordered) for k in range(len(ordered))], style, color=colour,
                            where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("share of reports (cumulative)")
        ax.axvline(TARGET_P99_MS, color="grey", lw=0.8, ls="--")
        ax.axhline(0.99, color="grey", lw=0.8, ls="--")
        ax.set_title("Report published → dispatch order read, per offered rate")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, directory / "latency.png"))

    if result.cost is not None:
        written.append(_cost_plot(plt, result.cost, directory))

    if result.quality:
        fig, axes = plt.subplots(1, 4, figsize=(15, 4.5))
        policies = [r.policy for r in result.quality[0].rows]
        width = 0.8 / len(policies)
        figures = (("priority 1 within 15 min (%)", lambda r: 100 * r.p1_share),
                   ("priority-1 mean arrival (min)", lambda r: r.p1_mean_s / 60),
                   ("late from report (%)", lambda r: 100 * r.late_report_share),
                   ("late from dispatch (%)", lambda r: 100 * r.late_share))
        for ax, (title, value) in zip(axes, figures):
            for k, policy in enumerate(policies):
                xs = [d + (k - (len(policies) - 1) / 2) * width for d in range(len(result.quality))]
                ax.bar(xs, [value(day.row(policy)) for day in result.quality], width, label=policy, color=f"C{k}")
            ax.set_xticks(range(len(result.quality)), [f"{d.intensity:g}× day" for d in result.quality])
            ax.set_title(title, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle("Dispatch quality on the simulated days: the policies and the capacity-relaxed ceiling")
        written.append(_save(fig, directory / "quality.png"))

    if result.throughput is not None:
        t = result.throughput
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(["reports → PostgreSQL\n(one worker)", "raw consume → produce\npipe"], [t.rate, t.pipe_rate],
               color=["C0", "C7"])
        ax.set_ylabel("per second")
        ax.set_title(f"Throughput (ratio {t.ratio:.3f})")
        ax.grid(True, axis="y", alpha=0.3)
        written.append(_save(fig, directory / "throughput.png"))
    return written



def _cost_plot(plt, c, directory: Path) -> Path:
    """Decision cost against the district's size, with the full scan and the fitted growth."""
    fig, ax = plt.subplots(figsize=(7, 5))
    units = [r.units for r in c.rows]
    for what, label, style in (("apply_us", "whole decision (apply), mean", "o-"),
                               ("search_us", "grid search, mean", "s-"),
                               ("brute_us", "baseline: full scan, mean", "^--")):
        ax.plot(units, [r.mean(what) for r in c.rows], style, label=label)
    ax.plot(units, [_quantile(r.apply_us, 0.99) for r in c.rows], "o:", label="whole decision, p99")
    # the fitted growth through the geometric mean of the apply times
    e = c.exponent()
    gx = math.exp(sum(math.log(u) for u in units) / len(units))
    gy = math.exp(sum(math.log(max(r.mean("apply_us"), 1e-9)) for r in c.rows) / len(units))
    ax.plot(units, [gy * (u / gx) ** e for u in units], color="grey", lw=0.8,
            label=f"fit: ∝ units^{e:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("units in the district")
    ax.set_ylabel("µs per assignment")
    ax.set_title("Decision cost as the district grows")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, directory / "decision_cost.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
