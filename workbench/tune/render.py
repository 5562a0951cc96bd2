"""A tune's result for people: the front as a table and a chart, the recommendation (terminal); the same with a
table per allocator as one HTML page. Renders a TuneResult, never re-measures."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.toolchain.settings import shown_environment
from workbench.tune.measure import Spread
from workbench.tune.result import MEMORY_NAMES, SPEED_NAMES, Gain, Trial, TuneResult
from workbench.units import format_bytes


def memory_name(memory: str) -> str:
    return MEMORY_NAMES.get(memory, f"anonymous RSS at '{memory}'")


def _bytes(value: float | None) -> str:
    return format_bytes(int(value)) if value is not None else "-"


def _speed(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}/s" if kind == "throughput" else f"{value / 1000:.2f} s"


def spread_text(spread: Spread | None, kind: str) -> str:
    """``96.1 MiB (95.3..97.0)``: the median and the runs' range."""
    if spread is None or spread.median is None:
        return "-"
    show = _bytes if kind == "bytes" else (lambda v: _speed(v, kind))
    if spread.min == spread.max:
        return show(spread.median)
    return f"{show(spread.median)} ({show(spread.min)}..{show(spread.max)})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"


def _noise(beyond: bool, result: TuneResult) -> str:
    if result.repeat < 2:
        return ", one run each: noise not measured"
    return ", beyond noise (the runs' ranges do not overlap)" if beyond else ", within noise"


def gain_text(g: Gain, result: TuneResult, ours: Trial | None = None) -> str:
    """``memory -21.8 % (90.0 MiB against 115.1 MiB (110.5..121.5)), beyond noise; speed +105.8 % (...)``: the
    change of each figure, from the reference to the recommendation."""
    mine = f"{spread_text(_objective_spread(ours, result), 'bytes')} against " if ours is not None else "against "
    memory = f"memory {_pct(-g.memory_pct if g.memory_pct is not None else None)} ({mine}" \
             f"{spread_text(g.memory, 'bytes')}){_noise(g.memory_beyond_noise, result)}"
    wall = result.speed_kind == "wall"
    change = -g.speed_pct if wall and g.speed_pct is not None else g.speed_pct
    mine = f"{spread_text(ours.result.speed, result.speed_kind)} against " if ours is not None else "against "
    speed = f"{'wall time' if wall else 'speed'} {_pct(change)} ({mine}{spread_text(g.speed, result.speed_kind)})" \
            f"{_noise(g.speed_beyond_noise, result)}"
    return f"{memory}; {speed}"


def mattered_text(result: TuneResult) -> str:
    """``idle anonymous RSS 25.1 MiB lower than glibc, speed +105.8 %``: what the change that mattered most did."""
    assert result.recommendation is not None and result.recommendation.mattered_most is not None
    m = result.recommendation.mattered_most
    return (f"{memory_name(result.memory)} {_bytes(abs(m.memory_bytes))} {'lower' if m.memory_bytes >= 0 else 'higher'} "
            f"than {m.against}" + (f", speed {_pct(m.speed_pct)}" if m.speed_pct is not None and
                                   result.speed_kind == "throughput" else ""))


def trials_table(trials: list[Trial], result: TuneResult, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("trial", justify="right")
    table.add_column("allocator and settings")
    table.add_column(memory_name(result.memory) + " (runs' range)", justify="right")
    table.add_column(SPEED_NAMES[result.speed_kind] + " (runs' range)", justify="right")
    table.add_column("peak anon RSS", justify="right")
    table.add_column("", no_wrap=True)
    for trial in trials:
        memory = trial.result.memory
        marks = ("front " if trial.number in result.front else "") + (
            "recommended" if result.recommendation and trial.number == result.recommendation.trial else "")
        state = trial.result.status if trial.state != "COMPLETE" else marks.strip()
        table.add_row(
            str(trial.number), Text(trial.spec),
            spread_text(_objective_spread(trial, result), "bytes"),
            spread_text(trial.result.speed, result.speed_kind),
            spread_text(memory.get("peak_anon_rss_bytes"), "bytes"), Text(state),
        )
    return table


def _objective_spread(trial: Trial, result: TuneResult) -> Spread | None:
    if result.memory in ("peak", "idle"):
        return trial.result.memory.get(f"{result.memory}_anon_rss_bytes")
    figures = trial.result.snapshots.get(result.memory)
    return figures.get("process.anon_rss_bytes") if figures else None


def front_chart(result: TuneResult, width: int = 100, height: int = 20) -> str:
    """The trials as points (memory across, speed up), the front's marked, as terminal text (plotext)."""
    import plotext

    complete = [t for t in result.trials if t.memory is not None and t.speed is not None]
    if not complete:
        return ""
    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    others = [t for t in complete if t.number not in result.front]
    front = sorted((t for t in complete if t.number in result.front), key=lambda t: t.memory or 0)
    mib = 1 << 20
    if others:
        plotext.scatter([(t.memory or 0) / mib for t in others], [t.speed or 0 for t in others], marker="dot",
                        label="trial")
    plotext.scatter([(t.memory or 0) / mib for t in front], [t.speed or 0 for t in front], marker="x",
                    label="front")
    plotext.xlabel(f"{memory_name(result.memory)} (MiB, median)")
    plotext.ylabel(SPEED_NAMES[result.speed_kind])
    text: str = plotext.build()
    plotext.clear_figure()
    return text


def render_text(result: TuneResult, console: Console) -> None:
    """The front, the chart, the recommendation with the environment to use, its gains and what mattered most."""
    complete = sum(1 for t in result.trials if t.state == "COMPLETE")
    front = sorted((result.trial(n) for n in result.front), key=lambda t: t.memory or 0)
    console.print(f"tune      {result.target.get('scenario') or ' '.join(result.target.get('command', []))}: "
                  f"{complete} of {len(result.trials)} trials complete, each {result.repeat} run(s) in a fresh "
                  f"worker; study {result.study['name']} ({result.study['mode']}, {result.study['storage']})",
                  highlight=False)
    if result.interrupted_by:
        console.print(f"interrupted by {result.interrupted_by}: the front of the trials finished so far",
                      highlight=False)
    if not front:
        console.print("No trial completed: there is no front.", highlight=False)
        return
    console.print(trials_table(front, result, f"Pareto front: {memory_name(result.memory)} (lower) against "
                                              f"{SPEED_NAMES[result.speed_kind]} "
                                              f"({'higher' if result.speed_kind == 'throughput' else 'lower'})"))
    chart = front_chart(result, width=min(console.width, 100))
    if chart:
        console.print(Text.from_ansi(chart))
    rec = result.recommendation
    if rec is None:
        return
    console.print(Text(f"Recommended: {rec.spec} (trial {rec.trial})", style="bold"))
    console.print(Text("  " + (shown_environment(rec.environment) or "(nothing to set: glibc's defaults)")))
    chosen = result.trial(rec.trial)
    for g in rec.gains:
        console.print(Text(f"  vs {g.against}: {gain_text(g, result, chosen)}"))
    if rec.mattered_most is not None:
        console.print(Text(f"  mattered most: {rec.mattered_most.change}: {mattered_text(result)}"))
    for note in result.notes:
        console.print(Text(f"• {note}"))


def _front_svg(result: TuneResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    complete = [t for t in result.trials if t.memory is not None and t.speed is not None]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    mib = 1 << 20
    allocators = list(dict.fromkeys(t.allocator for t in complete))
    for name in allocators:
        points = [t for t in complete if t.allocator == name]
        axes.scatter([(t.memory or 0) / mib for t in points], [t.speed or 0 for t in points], label=name, alpha=0.7)
    front = sorted((t for t in complete if t.number in result.front), key=lambda t: t.memory or 0)
    axes.plot([(t.memory or 0) / mib for t in front], [t.speed or 0 for t in front], color="black", linewidth=1,
              marker="x", label="Pareto front")
    for t in complete:  # the runs' range of each trial, both ways
        low, high = _objective_spread(t, result), t.result.speed
        if low is not None and low.min is not None and low.max is not None:
            axes.plot([low.min / mib, low.max / mib], [t.speed or 0] * 2, color="grey", linewidth=0.5)
        if high is not None and high.min is not None and high.max is not None:
            axes.plot([(t.memory or 0) / mib] * 2, [high.min, high.max], color="grey", linewidth=0.5)
    if result.recommendation is not None:
        chosen = result.trial(result.recommendation.trial)
        axes.annotate("recommended", ((chosen.memory or 0) / mib, chosen.speed or 0), textcoords="offset points",
                      xytext=(8, 8))
    axes.set_xlabel(f"{memory_name(result.memory)} (MiB, median of the runs)")
    axes.set_ylabel(SPEED_NAMES[result.speed_kind])
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    buffer = io.StringIO()
    plt.rcParams["svg.fonttype"] = "none"
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def render_html(result: TuneResult) -> str:
    """One self-contained page: the front chart, the recommendation, a table per allocator."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("workbench.tune", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    by_allocator: dict[str, list[dict[str, Any]]] = {}
    for trial in result.trials:
        by_allocator.setdefault(trial.allocator, []).append({
            "number": trial.number, "spec": trial.spec, "state": trial.result.status,
            "front": trial.number in result.front,
            "recommended": result.recommendation is not None and trial.number == result.recommendation.trial,
            "memory": spread_text(_objective_spread(trial, result), "bytes"),
            "peak": spread_text(trial.result.memory.get("peak_anon_rss_bytes"), "bytes"),
            "idle": spread_text(trial.result.memory.get("idle_anon_rss_bytes"), "bytes"),
            "speed": spread_text(trial.result.speed, result.speed_kind),
            "run_dir": trial.result.run_dir, "error": trial.result.error,
        })
    rec = result.recommendation
    return environment.get_template("tune.html.j2").render(
        result=result, memory_name=memory_name(result.memory), speed_name=SPEED_NAMES[result.speed_kind],
        chart=_front_svg(result) if any(t.memory is not None for t in result.trials) else None,
        by_allocator=by_allocator,
        recommendation=rec, environment=shown_environment(rec.environment) if rec else "",
        gains=[(g.against, gain_text(g, result, result.trial(rec.trial))) for g in rec.gains] if rec else [],
        mattered=mattered_text(result) if rec is not None and rec.mattered_most is not None else "",
        own_memory=result.memory not in ("peak", "idle"),
    )
