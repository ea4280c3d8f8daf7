"""`GET /verdict` as one self-contained HTML page (docs/contract.md §15): inline CSS, inline SVG, no
script and no external asset, so it works in any browser without JavaScript. Every value is escaped."""

from __future__ import annotations

import base64
import hashlib
import math
from html import escape
from typing import Any

COLOURS = {"supabase": "#3ecf8e", "convex": "#ee342f"}  # the colours of compare's and verdict's charts
CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}"
    "main{max-width:1140px;margin:0 auto;padding:20px 28px}h1{font-size:22px;margin:0 0 6px}"
    ".verdict{font-size:19px;font-weight:600;padding:12px 16px;border-radius:6px;background:#fff;"
    "border-left:6px solid #444;margin:14px 0}.verdict.none{border-left-color:#999;font-weight:500}"
    "table{border-collapse:collapse;background:#fff;margin:8px 0}td,th{padding:5px 12px;border-bottom:1px "
    "solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}"
    ".charts{display:flex;gap:18px;flex-wrap:wrap}figure{margin:0;background:#fff;border:1px solid #ddd;"
    "border-radius:6px;padding:8px}figcaption{font-weight:600;margin:0 0 4px 6px}"
    ".summary{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start;margin-bottom:14px}"
    ".facts{margin:8px 0;display:grid;grid-template-columns:max-content 1fr;gap:3px 16px}"
    ".facts dt{color:#555}.facts dd{margin:0}"
    ".note{color:#666;font-size:13px}text{font:11px system-ui,sans-serif;fill:#444}"
)
# The page's policy allows this one style block by its hash, and nothing else (blueprints/verdict.py).
CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 500, 260, 40, 56, 12


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} ms"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def _bound_label(bound_ms: float) -> str:
    return "+Inf" if math.isinf(bound_ms) else f"≤{bound_ms:g}"


def _marker(p50_ms: float | None, bounds_ms: list[float], left: float, width: float, top: int, bottom: float) -> str:
    """A dashed line where the estimated p50 falls, placed inside its bucket as it was interpolated."""
    if p50_ms is None:
        return ""
    lower = 0.0
    for i, upper in enumerate(bounds_ms):
        if p50_ms <= upper or math.isinf(upper):
            inside = 0.0 if math.isinf(upper) else (p50_ms - lower) / ((upper - lower) or 1)
            x = left + (i + min(max(inside, 0.0), 1.0)) * width
            return (f'<line class="p50" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#222" '
                    f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{top + 10}">p50</text>')
        lower = upper
    return ""


def _svg(backend: str, counts: list[int], bounds_ms: list[float], top_share: float, p50_ms: float | None) -> str:
    """One backend's distribution: a bar per bucket, as its share of that backend's lookups, on the same
    scale as the other backend's (so the two read side by side)."""
    total = sum(counts) or 1
    plot_w, plot_h = _WIDTH - _LEFT - 8, _HEIGHT - _BOTTOM - _TOP
    width = plot_w / max(len(counts), 1)
    bars, labels = [], []
    for i, (count, bound) in enumerate(zip(counts, bounds_ms, strict=True)):
        share = count / total
        height = plot_h * share / top_share if top_share else 0
        x, y = _LEFT + i * width, _TOP + plot_h - height
        bars.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{width - 2:.1f}" height="{height:.1f}" '
                    f'fill="{COLOURS[backend]}"><title>{escape(_bound_label(bound))} ms: {count} '
                    f'({share * 100:.1f}%)</title></rect>')
        lx, ly = x + width / 2, _TOP + plot_h + 10
        labels.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
                      f'transform="rotate(-50 {lx:.1f} {ly:.1f})">{escape(_bound_label(bound))}</text>')
    axis = [f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" stroke="#888"/>',
            f'<text x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">{top_share * 100:.0f}%</text>',
            f'<text x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
            f'<text x="{_LEFT + plot_w}" y="{_HEIGHT - 4}" text-anchor="end">bucket upper bound (ms)</text>',
            _marker(p50_ms, bounds_ms, _LEFT, width, _TOP, _TOP + plot_h)]
    return (f'<svg role="img" aria-label="{backend} distribution" width="{_WIDTH}" height="{_HEIGHT}" '
            f'viewBox="0 0 {_WIDTH} {_HEIGHT}" data-backend="{backend}">'
            f'<g class="bars" data-backend="{backend}">{"".join(bars)}</g>'
            f'<g class="axis" data-backend="{backend}">{"".join(axis + labels)}</g></svg>')


def _table(model: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{b}</td><td>{v['n']}</td><td>{_ms(v['p50'])}</td><td>{_ms(v['p95'])}</td></tr>"
                   for b, v in model["backends"].items())
    ratios = "".join(
        f"<tr><td>convex / supabase {label}</td><td colspan=\"3\">{r['ratio']:.2f} "
        f"(95% CI {r['ci_low']:.2f}–{r['ci_high']:.2f})</td></tr>"
        for label, r in model["ratios"].items() if r is not None)
    return ("<table><tr><th>backend</th><th>shadowed lookups</th><th>p50 (est.)</th><th>p95 (est.)</th></tr>"
            f"{rows}{ratios}</table>")


def _facts(model: dict[str, Any]) -> str:
    results = model["results"]
    follow = model["follow"]
    follower = ("no follower (capture off, or PostgreSQL could not say)" if follow is None
                else f"{follow['lag_s'] * 1000:.0f} ms behind, {follow['backlog']} changes waiting")
    facts = [("compared", f"{model['compared']} (match {results['match']})"),
             ("mismatch rate", f"{_percent(model['mismatch_rate'])} ({results['mismatch']})"),
             ("lag rate", f"{_percent(model['lag_rate'])} ({results['lag']}: the follower behind, equal on re-check)"),
             ("errors, dropped", f"{results['error']}, {results['dropped']}"), ("follower", follower)]
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts) + "</dl>"


def _page(body: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Kontak verdict</title>'
            f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head>'
            f"<body><main><h1>Kontak: Supabase and Convex on the same live lookups</h1>{body}</main></body></html>")


def _shown_buckets(model: dict[str, Any]) -> int:
    """Buckets up to the first one past the last either backend used: the empty seconds-long tail of a
    millisecond lookup would squeeze the bars that matter into a corner."""
    used = [i for v in model["backends"].values() for i, count in enumerate(v["counts"]) if count]
    return min(max(used) + 2, len(model["bounds_ms"])) if used else 0


def render(model: dict[str, Any], standin: bool) -> str:
    """The page of `services.verdict_page.page_model(...)`."""
    shown = _shown_buckets(model)
    shares = [c / (v["n"] or 1) for v in model["backends"].values() for c in v["counts"]]
    top = max(shares, default=0) or 1
    charts = "".join(
        f'<figure id="dist-{b}"><figcaption>{b}: {v["n"]} lookups, p50 {_ms(v["p50"])}</figcaption>'
        f'{_svg(b, v["counts"][:shown], model["bounds_ms"][:shown], top, v["p50"])}</figure>'
        for b, v in model["backends"].items()) if shown else '<p>No shadowed lookup yet.</p>'
    none = " none" if model["verdict"].startswith("No verdict") else ""
    notes = ["Percentiles and the ratio are estimated from the histogram's buckets (interpolated inside a "
             "bucket), so their resolution is the bucket width; the interval resamples each backend's buckets. "
             "For exact, paired figures: flask --app app verdict on the gunicorn log."]
    if standin:
        notes.insert(0, "The Convex side is the local stand-in: its times are not Convex's.")
    return _page(f'<p class="verdict{none}" id="verdict" data-pairs="{model["pairs"]}">{escape(model["verdict"])}</p>'
                 f'<section class="summary">{_table(model)}{_facts(model)}</section>'
                 f'<section class="charts">{charts}</section>'
                 + "".join(f'<p class="note">{escape(n)}</p>' for n in notes))


def render_off() -> str:
    """METRICS=off: nothing is recorded, so there is nothing live to show."""
    return _page('<p class="verdict none" id="verdict" data-pairs="0">Metrics are off (METRICS=off): no live '
                 "verdict. flask --app app verdict reads the shadow lines of the gunicorn log instead.</p>")
