"""The funnel as an SVG chart: one bar per stage, its count and the conversion from the
stage before. Rendered by an autoescaping Jinja2 template, so no label can inject markup."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

from reporting.funnel import FunnelReport

_TEMPLATE = """<svg xmlns="http://www.w3.org/2000/svg" width="{{ width }}" height="{{ height }}" \
viewBox="0 0 {{ width }} {{ height }}" role="img" aria-labelledby="title">
<title id="title">{{ title }}</title>
<style>text{font-family:system-ui,sans-serif;font-size:13px;fill:#1f2933}\
.n{font-weight:600}.c{fill:#52606d;font-size:12px}</style>
<text x="16" y="24" class="n">{{ title }}</text>
{% for bar in bars %}<g class="stage" data-stage="{{ bar.stage }}" data-count="{{ bar.count }}">
<text x="16" y="{{ bar.y + 18 }}">{{ bar.stage }}</text>
<rect x="{{ bar.x }}" y="{{ bar.y }}" width="{{ bar.width }}" height="26" rx="3" \
fill="{{ bar.colour }}"/>
<text x="{{ bar.x + bar.width + 8 }}" y="{{ bar.y + 18 }}" class="n">{{ bar.count }}</text>
{% if bar.conversion %}<text x="{{ bar.x + bar.width + 60 }}" y="{{ bar.y + 18 }}" \
class="c">{{ bar.conversion }} of {{ bar.previous }}</text>{% endif %}
</g>
{% endfor %}</svg>
"""
_COLOURS = ("#9fb3c8", "#627d98", "#486581", "#334e68", "#243b53", "#2f855a")
_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def funnel_svg(report: FunnelReport, title: str = "Lifecycle funnel") -> str:
    """An SVG document of the funnel; bars scale to the widest stage."""
    left, bar_area, row = 130, 420, 36
    widest = max((stage.reached for stage in report.stages), default=0) or 1
    bars = []
    for index, stage in enumerate(report.stages):
        previous = report.stages[index - 1] if index else None
        conversion = None
        if previous is not None and previous.reached:
            conversion = f"{100 * stage.reached / previous.reached:.0f}%"
        bars.append(
            {
                "stage": stage.stage,
                "count": stage.reached,
                "x": left,
                "y": 40 + index * row,
                "width": max(2, round(bar_area * stage.reached / widest)),
                "colour": _COLOURS[index % len(_COLOURS)],
                "conversion": conversion,
                "previous": previous.stage if previous else None,
            }
        )
    return _env.from_string(_TEMPLATE).render(
        bars=bars, title=title, width=left + bar_area + 170, height=50 + len(bars) * row
    )
