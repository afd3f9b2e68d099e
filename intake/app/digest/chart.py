"""The digest's chart: applications per day over the last 30 days, stacked by outcome.

Drawn with matplotlib's Agg backend (imported when a chart is drawn) on a :class:`~matplotlib.figure.Figure` of
its own (no pyplot: no global state, safe on the scheduler's thread and with
no display). It must read without colour: every outcome has its own hatch
pattern and grey level, the legend names them, and each day's total is
written above its bar.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from intake.app.digest.collect import Daily

#: Outcome -> (face colour, hatch): distinct in grey and in print.
STYLE = {
    "approved": ("#4d4d4d", ""),
    "open": ("#ffffff", "..."),
    "incomplete": ("#bdbdbd", "///"),
    "expired": ("#e0e0e0", "xx"),
    "rejected": ("#8c8c8c", "\\\\\\"),
}
#: Content-ID of the chart in the digest mail (``cid:`` in its HTML).
CONTENT_ID = "digest-chart@pasts"


def chart_png(daily: Daily, labels: Mapping[str, str], *, title: str = "") -> bytes:
    """The chart of ``daily`` as PNG bytes; ``labels`` names each outcome (the legend)."""
    # Imported here: matplotlib takes a second to import, and only the digest needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8.0, 3.2), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    # Fixed margins rather than tight_layout(), which draws the figure once more.
    fig.subplots_adjust(left=0.05, right=0.99, top=0.9 if title else 0.97, bottom=0.09)
    ax = fig.add_subplot()
    days = len(daily.days)
    bottom = [0] * days
    handles = []
    for outcome, counts in daily.series:
        face, hatch = STYLE.get(outcome, ("#ffffff", "--"))
        style: dict[str, Any] = {"facecolor": face, "hatch": hatch, "edgecolor": "black",
                                 "linewidth": 0.6}
        # Only the days with a count are drawn: hatching empty bars is most of the time.
        shown = [i for i in range(days) if counts[i]]
        if shown:
            ax.bar(shown, [counts[i] for i in shown], bottom=[bottom[i] for i in shown],
                   width=0.8, **style)
        handles.append(Patch(label=labels.get(outcome, outcome), **style))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    for x, total in enumerate(bottom):
        if total:
            ax.text(x, total, str(total), ha="center", va="bottom", fontsize=8)
    step = max(1, days // 10)
    ax.set_xticks(range(0, days, step), [d.strftime("%m-%d") for d in daily.days[::step]],
                  fontsize=9)
    ax.set_xlim(-0.6, days - 0.4)
    ax.set_ylim(0, max([*bottom, 1]) * 1.35 + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="y", labelsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    ax.legend(handles=handles, fontsize=9, loc="upper left", ncols=len(handles), frameon=False)
    buf = io.BytesIO()
    # No time in the metadata: the same facts give the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
