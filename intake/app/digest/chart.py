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
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8.0, 3.2), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(len(daily.days)))
    bottom = [0] * len(daily.days)
    for outcome, counts in daily.series:
        face, hatch = STYLE.get(outcome, ("#ffffff", "--"))
        ax.bar(positions, counts, bottom=bottom, width=0.8, color=face, hatch=hatch,
               edgecolor="black", linewidth=0.6, label=labels.get(outcome, outcome))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    for x, total in zip(positions, bottom, strict=True):
        if total:
            ax.text(x, total, str(total), ha="center", va="bottom", fontsize=8)
    step = max(1, len(daily.days) // 10)
    ax.set_xticks(positions[::step], [d.strftime("%m-%d") for d in daily.days[::step]],
                  fontsize=9)
    ax.set_xlim(-0.6, len(daily.days) - 0.4)
    ax.set_ylim(0, max([*bottom, 1]) * 1.35 + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="y", labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    ax.legend(fontsize=9, loc="upper left", ncols=len(daily.series), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    # No time in the metadata: the same facts give the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
