"""The report's front page: every notebook's question and headline figures, one page, no script.

It only turns sidecar dictionaries (see :mod:`d1bench.report`) into HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = ["SEED_TABLE_KEY", "index_page"]

_CSS = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #222;
       margin: 0; background: #fafafa; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 3em; background: white; }
h1 { margin: 0 0 0.2em; font-size: 1.8em; }
.meta { color: #666; font-size: 0.9em; margin: 0 0 1em; }
nav ol { padding-left: 1.2em; margin: 0.3em 0 1.5em; }
nav li { margin: 0.15em 0; }
section { border-top: 1px solid #ddd; padding: 1em 0 0.5em; }
h2 { font-size: 1.35em; margin: 0.2em 0 0.3em; }
h2 a { color: #0b4f8a; text-decoration: none; }
h2 a:hover { text-decoration: underline; }
.question { font-size: 1.05em; color: #333; margin: 0 0 0.8em; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.5em 0 1em; }
.card { flex: 1 1 220px; max-width: 340px; border: 1px solid #d6e4f0; border-left: 4px solid #0072B2;
        border-radius: 3px; background: #f5f9fd; padding: 0.55em 0.8em; }
.card .label { font-size: 0.85em; color: #444; }
.card .value { font-size: 1.45em; font-weight: bold; margin: 0.1em 0; color: #111; }
.card .note { font-size: 0.8em; color: #666; }
.card .from { font-size: 0.75em; margin-top: 0.3em; }
#at-a-glance .card { border-left-color: #E69F00; background: #fffaf0; border-color: #f0e0c0; }
.tables { margin: 0.5em 0 1em; }
.tables h3, .figures h3 { font-size: 0.95em; margin: 0.8em 0 0.3em; color: #333; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 9px; text-align: right; }
th { background: #f0f0f0; }
th:first-child, td:first-child { text-align: left; }
.tnote { font-size: 0.8em; color: #666; margin: 0.2em 0 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures figure { margin: 0; flex: 1 1 100%; max-width: 960px; }
.figures img { max-width: 100%; height: auto; border: 1px solid #eee; }
.figures figcaption { font-size: 0.8em; color: #555; }
.more { font-size: 0.9em; }
.run { color: #777; font-size: 0.8em; }
.failed { background: #fdecea; border: 1px solid #f5c2bd; color: #8a1f11; padding: 0.5em 0.8em;
          border-radius: 3px; margin: 0.5em 0; }
.badge { font-size: 0.7em; vertical-align: middle; background: #c0392b; color: white;
         padding: 0.1em 0.45em; border-radius: 3px; margin-left: 0.4em; }
.empty { color: #777; font-style: italic; }
#thresholds .card { border-left-color: #c0392b; background: #fdecea; border-color: #f5c2bd; }
#thresholds .held { color: #1e7b34; }
"""


def _shown(value: Any) -> str:
    """A parameter as the index prints it: a path by its file name only."""
    text = str(value)
    return text.rsplit("/", 1)[-1] if "/" in text and " " not in text else text


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value: Any) -> str:
    from d1bench.report.headlines import format_number

    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _cards(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    out = ['<div class="cards">']
    for h in items:
        note = f'<div class="note">{_e(h.get("note"))}</div>' if h.get("note") else ""
        out.append(f'<div class="card"><div class="label">{_e(h.get("label"))}</div>'
                   f'<div class="value">{_e(h.get("text"))}</div>{note}</div>')
    out.append("</div>")
    return "".join(out)


def _tables(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    out = ['<div class="tables">']
    for h in items:
        head = "".join(f"<th>{_e(c)}</th>" for c in h.get("columns", []))
        rows = "".join("<tr>" + "".join(f"<td>{_e(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in h.get("rows", []))
        note = f'<p class="tnote">{_e(h.get("note"))}</p>' if h.get("note") else ""
        out.append(f"<h3>{_e(h.get('label'))}</h3><table><thead><tr>{head}</tr></thead>"
                   f"<tbody>{rows}</tbody></table>{note}")
    out.append("</div>")
    return "".join(out)


def _figures(items: list[dict[str, Any]]) -> str:
    items = [h for h in items if h.get("image")]
    if not items:
        return ""
    out = ['<div class="figures">']
    for h in items:
        caption = _e(h.get("note") or "")
        out.append(f'<figure><h3>{_e(h.get("label"))}</h3>'
                   f'<img src="{_e(h["image"])}" alt="{_e(h.get("label"))}">'
                   f"<figcaption>{caption}</figcaption></figure>")
    out.append("</div>")
    return "".join(out)


def _lead(sidecars: Sequence[dict[str, Any]]) -> str:
    """The headlines notebooks marked ``lead`` (the fix plan), before everything else."""
    items = [(sc, h) for sc in sidecars for h in sc.get("headlines", []) if h.get("lead")]
    if not items:
        return ""
    cards = _cards([h for _sc, h in items if h.get("kind") in ("number", "text")])
    tables = _tables([h for _sc, h in items if h.get("kind") == "table"])
    links = ", ".join(dict.fromkeys(f'<a href="#{_e(sc.get("notebook"))}">{_e(sc.get("title"))}</a>'
                                    for sc, _h in items))
    return (f'<section id="plan"><h2>The plan</h2>{cards}{tables}'
            f'<p class="meta">From {links}.</p></section>')


#: The headline key notebook 05 records seed 000's benchmark table under.
SEED_TABLE_KEY = "seed_benchmark"


def _seed_table(sidecars: Sequence[dict[str, Any]]) -> str:
    """Seed 000's benchmark table, measured, right after the plan: the figure the seed leads with."""
    items = [(sc, h) for sc in sidecars for h in sc.get("headlines", [])
             if h.get("key") == SEED_TABLE_KEY and h.get("kind") == "table"]
    if not items:
        return ""
    links = ", ".join(dict.fromkeys(f'<a href="#{_e(sc.get("notebook"))}">{_e(sc.get("title"))}</a>'
                                    for sc, _h in items))
    return (f'<section id="seed-table"><h2>Seed 000\'s benchmark table, measured</h2>'
            f'{_tables([h for _sc, h in items])}<p class="meta">From {links}.</p></section>')


def _at_a_glance(sidecars: Sequence[dict[str, Any]]) -> str:
    """The headlines notebooks marked ``top``, each linking to its notebook's section."""
    cards = []
    for sc in sidecars:
        for h in sc.get("headlines", []):
            if h.get("top") and h.get("kind") in ("number", "text"):
                note = f'<div class="note">{_e(h.get("note"))}</div>' if h.get("note") else ""
                cards.append(f'<div class="card"><div class="label">{_e(h.get("label"))}</div>'
                             f'<div class="value">{_e(h.get("text"))}</div>{note}'
                             f'<div class="from"><a href="#{_e(sc.get("notebook"))}">'
                             f'{_e(sc.get("title"))}</a></div></div>')
    if not cards:
        return ""
    return f'<section id="at-a-glance"><h2>At a glance</h2><div class="cards">{"".join(cards)}</div></section>'


def _flags(sidecars: Sequence[dict[str, Any]]) -> str:
    """A red flag for every threshold a notebook found crossed (see ``record_thresholds``)."""
    from d1bench.report.headlines import THRESHOLD_COLUMNS, THRESHOLDS_KEY

    cards, labels = [], []
    for sc in sidecars:
        for h in sc.get("headlines", []):
            if h.get("kind") != "table" or not str(h.get("key", "")).startswith(THRESHOLDS_KEY):
                continue
            if list(h.get("columns", [])) != THRESHOLD_COLUMNS:
                continue
            labels.append(f'{_e(h.get("label"))} (<a href="#{_e(sc.get("notebook"))}">'
                          f'{_e(sc.get("title"))}</a>)')
            for row in h.get("rows", []):
                cell = dict(zip(THRESHOLD_COLUMNS, row))
                if cell["result"] != "CROSSED":
                    continue
                cards.append(
                    f'<div class="card flag"><div class="label">&#9873; {_e(cell["threshold"])}'
                    f' &middot; {_e(cell["template"])}</div>'
                    f'<div class="value">{_e(_cell(cell["value"]))}</div>'
                    f'<div class="note">limit {_e(_cell(cell["limit"]))}, past it by '
                    f'{_e(_cell(cell["by"]))}</div><div class="from"><a href="#'
                    f'{_e(sc.get("notebook"))}">{_e(sc.get("title"))}</a></div></div>')
    if not labels:
        return ""
    summary = "".join(f'<p class="{"held" if not cards else "tnote"}">{label}</p>'
                      for label in labels)
    title = f"Thresholds crossed: {len(cards)}" if cards else "Thresholds: all held"
    return (f'<section id="thresholds"><h2>{title}</h2>{summary}'
            f'<div class="cards">{"".join(cards)}</div></section>')


def _section(sc: dict[str, Any]) -> str:
    stem = sc.get("notebook", "")
    number, _, _ = stem.partition("_")
    failed = sc.get("status") != "ok"
    badge = '<span class="badge">failed</span>' if failed else ""
    headlines = sc.get("headlines", [])
    parts = [f'<section id="{_e(stem)}">',
             f'<h2><a href="{_e(sc.get("html"))}">{_e(number)} &middot; {_e(sc.get("title"))}</a>{badge}</h2>']
    if sc.get("question"):
        parts.append(f'<p class="question">{_e(sc["question"])}</p>')
    if failed:
        parts.append(f'<div class="failed">This notebook stopped with an error: '
                     f'{_e(sc.get("error"))}. Its page shows where.</div>')
    parts.append(_cards([h for h in headlines if h.get("kind") in ("number", "text")]))
    parts.append(_tables([h for h in headlines if h.get("kind") == "table"]))
    parts.append(_figures([h for h in headlines if h.get("kind") == "figure"]))
    if not headlines and not failed:
        parts.append('<p class="empty">No headline figures recorded.</p>')
    params = ", ".join(f"{k}={_shown(v)}" for k, v in sorted((sc.get("parameters") or {}).items()))
    parts.append(f'<p class="more"><a href="{_e(sc.get("html"))}">Read the full report &rarr;</a></p>'
                 f'<p class="run">Ran in {_e(sc.get("seconds"))} s on {_e(sc.get("executed_at"))}; '
                 f"parameters: {_e(params)}</p></section>")
    return "".join(parts)


def _corpus_line(sidecars: Sequence[dict[str, Any]]) -> str:
    papers = {(sc.get("parameters") or {}).get("papers") for sc in sidecars} - {None}
    corpora = {(sc.get("parameters") or {}).get("corpus_path") for sc in sidecars} - {None, "None"}
    bits = []
    if len(papers) == 1:
        (n,) = papers
        try:
            bits.append(f"corpus of {int(str(n)):,} papers")
        except ValueError:
            bits.append(f"corpus of {n} papers")
    elif papers:
        bits.append("corpora of " + ", ".join(sorted(map(str, papers))) + " papers")
    if len(corpora) == 1:
        bits.append(f"({_shown(next(iter(corpora)))})")
    return " ".join(bits)


def index_page(sidecars: Sequence[dict[str, Any]], *, generator: str) -> str:
    """The HTML of ``index.html`` from the notebooks' sidecars (see :mod:`d1bench.report`)."""
    versions = sorted({str(sc.get("d1bench_version")) for sc in sidecars})
    dates = sorted(str(sc.get("executed_at")) for sc in sidecars if sc.get("executed_at"))
    meta = [b for b in (_corpus_line(sidecars),
                        f"generated {dates[-1]}" if dates else "",
                        "d1bench " + ", ".join(versions) if versions else "") if b]
    failed = [sc for sc in sidecars if sc.get("status") != "ok"]
    toc = "".join(
        f'<li><a href="#{_e(sc.get("notebook"))}">{_e(sc.get("title"))}</a>'
        f'{" (failed)" if sc.get("status") != "ok" else ""}</li>' for sc in sidecars
    )
    warning = (f'<div class="failed">{len(failed)} of {len(sidecars)} notebooks failed; '
               "their figures are missing below.</div>") if failed else ""
    body = "".join(_section(sc) for sc in sidecars) or '<p class="empty">No reports yet.</p>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta name="generator" content="{_e(generator)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>d1bench report</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>d1bench report</h1>"
        "<p class=\"meta\">How fast each query of the medical-literature workload is on SQLite and "
        "on D1, how many rows it reads (what D1 bills), which indexes fix the slow ones and what "
        f"they save. {_e(' · '.join(meta))}</p>"
        f"{warning}{_lead(sidecars)}{_seed_table(sidecars)}<nav><ol>{toc}</ol></nav>{_flags(sidecars)}"
        f"{_at_a_glance(sidecars)}{body}</main></body></html>\n"
    )
