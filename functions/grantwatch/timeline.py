"""A lineage as a picture: one self-contained HTML page (inline CSS and SVG, no network, no CDN) with a row
per function or resource, each grant a bar from its creation to its end, coloured by how it ended, alerts
and resolved notices as markers, and the details of each on hover."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from grantwatch.domain.facts import parse_utc_iso

_WIDTH, _LEFT, _ROW, _BAR = 1100, 260, 46, 14
_COLOURS = {"active": "#2e7d32", "retired": "#ef6c00", "revoked": "#c62828", "unknown": "#9e9e9e"}


def render_timeline(title: str, rows: list[dict[str, Any]], *, now: datetime) -> str:
    """The page for `lineage` rows (grant events, alerts, resolutions), drawn up to `now`."""
    grants: dict[str, dict[str, Any]] = {}
    markers: list[dict[str, Any]] = []
    for row in rows:
        if row["what"] in {"alert", "resolved"}:
            markers.append(row)
            continue
        grant = grants.setdefault(
            row["grantId"], {"grantId": row["grantId"], "lane": _lane(row), "events": []}
        )
        grant["events"].append(row)
    times = [parse_utc_iso(r["time"]) for r in rows] or [now]
    start, end = min(times), max(max(times), now)
    span = max((end - start).total_seconds(), 3600.0)
    start -= timedelta(seconds=span * 0.02)
    span *= 1.04

    def x(moment: datetime) -> float:
        return _LEFT + (moment - start).total_seconds() / span * (_WIDTH - _LEFT - 20)

    lanes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for grant in grants.values():
        lanes[grant["lane"]].append(grant)
    for marker in markers:
        lanes.setdefault(marker["functionArn"].rsplit(":", 1)[-1], [])
    lane_names = sorted(lanes)
    height = 60 + _ROW * max(len(lane_names), 1)
    parts = [_axis(start, span, height, x)]
    for index, lane in enumerate(lane_names):
        y = 40 + index * _ROW
        parts.append(f'<text class="lane" x="8" y="{y + _BAR}">{_e(lane)}</text>')
        for offset, grant in enumerate(sorted(lanes[lane], key=lambda g: g["events"][0]["time"])):
            parts.append(_bar(grant, y + (offset % 2) * 6, x, now))
        for marker in (m for m in markers if m["functionArn"].rsplit(":", 1)[-1] == lane):
            parts.append(_marker(marker, y, x))
    svg = (
        f'<svg width="{_WIDTH}" height="{height}" role="img" aria-label="{_e(title)}">{"".join(parts)}</svg>'
    )
    legend = " ".join(
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{name}</span>'
        for name, colour in _COLOURS.items()
    )
    return _PAGE.format(title=_e(title), legend=legend, svg=svg, grants=len(grants), markers=len(markers))


def _lane(row: dict[str, Any]) -> str:
    if row.get("functionArn"):
        return str(row["functionArn"]).rsplit(":", 1)[-1]
    return str(row.get("service") or "other")


def _bar(grant: dict[str, Any], y: int, x: Any, now: datetime) -> str:
    events = sorted(grant["events"], key=lambda e: e["time"])
    created = next((e for e in events if e["what"] == "created"), None)
    ended = next((e for e in events if e["what"] in {"retired", "revoked"}), None)
    state = ended["what"] if ended else ("active" if created else "unknown")
    begin = parse_utc_iso((created or events[0])["time"])
    finish = parse_utc_iso(ended["time"]) if ended else now
    left, right = x(begin), max(x(finish), x(begin) + 3)
    detail = [f"grant {grant['grantId']}", f"state: {state}"]
    detail += [
        f"{e['time']} {e['what']} by {e['by']}" + (f" via {e['via']}" if e.get("via") else "") for e in events
    ]
    return (
        f'<g class="grant {state}" data-grant-id="{_e(grant["grantId"])}">'
        f"<title>{_e(chr(10).join(detail))}</title>"
        f'<rect x="{left:.1f}" y="{y}" width="{right - left:.1f}" height="{_BAR}" rx="3" '
        f'fill="{_COLOURS[state]}"/></g>'
    )


def _marker(marker: dict[str, Any], y: int, x: Any) -> str:
    at = x(parse_utc_iso(marker["time"]))
    detail = [
        f"{marker['what']} {marker['time']}",
        f"incident {marker['incidentId']}",
        f"grant {marker['grantId']}",
    ]
    if marker["what"] == "alert":
        detail.append(f"type: {marker.get('alertType')}")
        shape = f'<path d="M {at:.1f} {y - 4} l 7 12 l -14 0 z" fill="#b71c1c"/>'
    else:
        detail.append(f"reason: {marker.get('reason')}")
        shape = f'<circle cx="{at:.1f}" cy="{y + 2}" r="6" fill="#1b5e20"/>'
    return (
        f'<g class="marker {marker["what"]}" data-incident-id="{_e(marker["incidentId"])}">'
        f"<title>{_e(chr(10).join(detail))}</title>{shape}</g>"
    )


def _axis(start: datetime, span: float, height: int, x: Any) -> str:
    ticks = []
    for step in range(6):
        moment = start + timedelta(seconds=span * step / 5)
        position = x(moment)
        anchor = ' text-anchor="end" style="text-anchor:end"' if step == 5 else ""
        ticks.append(
            f'<line x1="{position:.1f}" y1="24" x2="{position:.1f}" y2="{height - 8}" class="tick"/>'
            f'<text class="date" x="{position:.1f}" y="16"{anchor}>{moment:%Y-%m-%d %H:%M}</text>'
        )
    return "".join(ticks)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #212121; }}
h1 {{ font-size: 18px; }} .key {{ margin-right: 14px; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; border-radius: 2px; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #424242; }}
svg .date {{ text-anchor: middle; font-size: 11px; }}
svg .tick {{ stroke: #e0e0e0; }} svg g.grant:hover rect {{ stroke: #000; stroke-width: 1.5; }}
</style></head>
<body data-grants="{grants}" data-markers="{markers}">
<h1>{title}</h1>
<p>{legend} <span class="key">&#9650; alert</span> <span class="key">&#9679; resolved</span>
&mdash; hover over a bar or a marker for its details.</p>
{svg}
<script>document.body.dataset.rendered = document.querySelectorAll("g.grant").length + " grants";</script>
</body></html>
"""
