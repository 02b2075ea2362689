"""The migration report as one self-contained HTML page a person reads in a browser.

Everything shown comes from the report dict (see ``sandbox.summary``), whose values
are already PII-masked; every value is still HTML-escaped, because customer files are
untrusted and a cell may hold markup. The page has no script and loads nothing: the
stylesheet and the chart (SVG) are inline.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from .chart import Bar, bar_chart_svg
from .style import STYLESHEET

__all__ = ["render_html"]

LEVEL_TITLES = {1: "Level 1 — field mapping", 2: "Level 2 — data logic", 3: "Level 3 — sampled review"}
REPLAY_OUTCOMES = ("accepted", "rejected", "transfer_required", "upstream_unavailable", "not_replayed")
_MISSING = "—"
# Lone surrogates stand for bytes a file's encoding could not decode; UTF-8 cannot carry them.
_SURROGATES = re.compile("[\ud800-\udfff]")


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page for one run's report dict."""
    run = _mapping(report.get("run"))
    run_id = _text(run.get("id"))
    sections = [
        _header(run),
        _summary(report),
        _rules(report.get("rules") or []),
        _sample(_mapping(report.get("sample"))),
        _sign_off(report.get("sign_off"), run),
        _replay(report),
    ]
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Migration report {escape(run_id)}</title>\n"
        f"<style>{STYLESHEET}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    return _SURROGATES.sub("\ufffd", page)


# -- sections -------------------------------------------------------------------------


def _header(run: Mapping[str, Any]) -> str:
    source = _mapping(run.get("source"))
    status = _text(run.get("status"))
    fields = [
        ("Run", run.get("id")),
        ("Status", None),
        ("File", source.get("file")),
        ("Format", source.get("format")),
        ("Encoding", source.get("encoding")),
        ("Rows in file", source.get("rows")),
        ("Mapping", run.get("mapping")),
        ("Seed", run.get("seed")),
        ("Started", run.get("started_at")),
        ("Finished", run.get("finished_at")),
        ("Duration", _duration(run.get("started_at"), run.get("finished_at"))),
        ("Batch size / concurrency", f"{_count(run.get('batch_size'))} / {_count(run.get('concurrency'))}"),
    ]
    items = []
    for label, value in fields:
        if label == "Status":
            shown = f'<span class="status status-{_token(status)}">{escape(status)}</span>'
        else:
            shown = escape(_count(value)) if label == "Rows in file" else escape(_text(value))
        items.append(f"<dt>{escape(label)}</dt><dd>{shown}</dd>")
    note = ""
    if status == "interrupted":
        note = (
            '<p class="callout">This run was interrupted. Resume it (rows already replayed are not sent again) with '
            f"<code>hr-gateway sandbox migrate {escape(_text(source.get('file')))} --mapping "
            f"{escape(_text(run.get('mapping')))} --resume {escape(_text(run.get('id')))}</code>.</p>"
        )
    elif status == "failed":
        note = '<p class="callout">This run failed before it finished; the counts below cover the rows it reached.</p>'
    elif status in ("validating", "replaying"):
        note = '<p class="callout">This run is still in progress; the counts below are a snapshot.</p>'
    return (
        '<header id="run">\n<h1>Migration rehearsal report</h1>\n'
        f'<dl class="run">{"".join(items)}</dl>\n{note}\n'
        '<nav><a href="#summary">Summary</a><a href="#rules">Findings by rule</a>'
        '<a href="#sample">Review sample</a><a href="#sign-off">Sign-off</a><a href="#replay">Replay</a></nav>\n'
        "</header>"
    )


def _summary(report: Mapping[str, Any]) -> str:
    summary = _mapping(report.get("summary"))
    level1 = _mapping(summary.get("level1"))
    level2 = _mapping(summary.get("level2"))
    replay = _mapping(summary.get("replay"))
    sample = _mapping(report.get("sample"))
    items = sample.get("items") or []
    strata = {item.get("stratum") for item in items if isinstance(item, Mapping)}
    rows = summary.get("rows")
    signed = isinstance(report.get("sign_off"), Mapping)

    def row(level: str, cells: list[tuple[str, Any]], checks: str) -> str:
        shown = "".join(
            f'<td class="num"><span class="note">{escape(key.rsplit(".", 1)[-1].replace("_", " "))}</span> '
            f'<strong data-key="{escape(key)}">{escape(_count(value))}</strong>'
            f"{'' if key.startswith('sample.') else _share(value, rows)}</td>"
            for key, value in cells
        )
        padding = "<td></td>" * (len(REPLAY_OUTCOMES) - len(cells))
        return f"<tr><th>{escape(level)}</th><td>{escape(checks)}</td>{shown}{padding}</tr>"

    sign_off_state = (
        '<td><span class="note">sign-off</span> '
        f'<strong data-key="sign_off">{"signed off" if signed else "awaiting sign-off"}</strong></td>'
    )
    table = [
        '<table class="summary">',
        f'<tr><th>level</th><th>what it checks</th><th colspan="{len(REPLAY_OUTCOMES)}">rows</th></tr>',
        row(
            LEVEL_TITLES[1],
            [("level1.passed", level1.get("passed")), ("level1.failed", level1.get("failed"))],
            "every mapped column present and parsed into its canonical field",
        ),
        row(
            LEVEL_TITLES[2],
            [
                ("level2.passed", level2.get("passed")),
                ("level2.failed", level2.get("failed")),
                ("level2.warnings", level2.get("warnings")),
            ],
            "ID numbers, dates, bases, duplicates and cross-row conflicts",
        ),
        row(
            LEVEL_TITLES[3],
            [("sample.sampled", len(items)), ("sample.strata", len(strata))],
            "a seeded sample per region and outcome, read by a person",
        ).replace("<td></td>", sign_off_state, 1),
        row(
            "Replay",
            [(f"replay.{outcome}", replay.get(outcome)) for outcome in REPLAY_OUTCOMES],
            "rows that passed, sent as the submissions they imply to the sandbox bureaus",
        ),
        "</table>",
    ]
    return (
        '<section id="summary">\n<h2>Summary</h2>\n'
        f'<p>Rows read: <strong data-key="rows">{escape(_count(rows))}</strong></p>\n'
        + "\n".join(table)
        + "\n</section>"
    )


def _rules(rules: Iterable[Any]) -> str:
    rules = [_mapping(rule) for rule in rules]
    bars = [
        Bar(
            label=_text(rule.get("rule")),
            count=rule.get("count") if isinstance(rule.get("count"), int) else 0,
            severity=_text(rule.get("severity")),
            title=_text(rule.get("title"), ""),
        )
        for rule in rules
    ]
    chart = bar_chart_svg(bars, caption="Findings per rule")
    legend = (
        '<p class="legend">Rows with a finding, per rule:'
        '<span style="background:#c0392b"></span>error (the row is not replayed)'
        '<span style="background:#d68910"></span>warning (the row is replayed; check it)</p>'
    )
    blocks = []
    ordered = sorted(
        rules, key=lambda rule: (_int(rule.get("level")), -_int(rule.get("count")), _text(rule.get("rule")))
    )
    for rule in ordered:
        code = _text(rule.get("rule"))
        severity = _text(rule.get("severity"))
        examples = [_mapping(example) for example in rule.get("examples") or []]
        count = rule.get("count")
        header = (
            f'<h3 id="rule-{escape(_token(code))}"><code>{escape(code)}</code> — {escape(_text(rule.get("title"), ""))}</h3>'
            f"<p>Level {escape(_text(rule.get('level')))}, "
            f'<span class="severity-{escape(_token(severity))}">{escape(severity)}</span>: '
            f'<strong data-key="count">{escape(_count(count))}</strong> finding(s)'
            + (
                f"; {len(examples)} example(s) below"
                if examples and isinstance(count, int) and count > len(examples)
                else ""
            )
            + ".</p>"
        )
        rows = "".join(
            "<tr>"
            f'<td class="num">{escape(_text(example.get("row")))}</td>'
            f"<td>{escape(_text(example.get('column')))}</td>"
            f"<td>{escape(_text(example.get('field')))}</td>"
            f"{_value_cell(example.get('value'))}"
            f"<td>{escape(_text(example.get('message')))}</td>"
            f'<td class="num">{escape(_text(example.get("related_row")))}</td>'
            "</tr>"
            for example in examples
        )
        table = (
            f'<table class="examples" data-rule="{escape(code)}"><tr><th class="num">row</th><th>column</th>'
            '<th>field</th><th>value (masked)</th><th>message</th><th class="num">related row</th></tr>'
            f"{rows}</table>"
            if examples
            else ""
        )
        blocks.append(f'<div class="rule" data-rule="{escape(code)}">{header}{table}</div>')
    body = "\n".join(blocks) if blocks else '<p class="callout ok">No row broke any rule.</p>'
    return f'<section id="rules">\n<h2>Findings by rule</h2>\n{chart}\n{legend}\n{body}\n</section>'


def _sample(sample: Mapping[str, Any]) -> str:
    items = [_mapping(item) for item in sample.get("items") or []]
    intro = (
        f'<p>Seed <code data-key="seed">{escape(_text(sample.get("seed")))}</code>, at most '
        f'<span data-key="per_stratum">{escape(_count(sample.get("per_stratum")))}</span> rows per stratum '
        "(region × outcome). Each row is shown as it stands in the file next to the canonical record the "
        "mapping made of it; highlighted cells hold a value that does not appear unchanged on the other side "
        "(converted, normalised or not carried over). Values are masked.</p>"
    )
    if not items:
        return f'<section id="sample">\n<h2>Review sample</h2>\n{intro}\n<p>No rows sampled.</p>\n</section>'
    strata: dict[str, int] = {}
    for item in items:
        strata[_text(item.get("stratum"))] = strata.get(_text(item.get("stratum")), 0) + 1
    strata_table = (
        '<table class="strata"><tr><th>stratum</th><th class="num">rows sampled</th></tr>'
        + "".join(
            f'<tr><td>{escape(name)}</td><td class="num">{count}</td></tr>' for name, count in sorted(strata.items())
        )
        + "</table>"
    )
    cards = []
    for item in sorted(items, key=lambda item: (_text(item.get("stratum")), _int(item.get("row")))):
        source = _mapping(item.get("source"))
        canonical = _mapping(item.get("canonical"))
        source_values = {_normal(value) for value in source.values() if value is not None}
        canonical_values = {_normal(value) for value in canonical.values() if value is not None}
        left = _pairs_table("column in the file", "value", source, canonical_values, "source")
        right = _pairs_table("canonical field", "value", canonical, source_values, "canonical")
        cards.append(
            f'<div class="sample-item" data-row="{escape(_text(item.get("row")))}">'
            f'<h3>Row {escape(_text(item.get("row")))} <span class="note">· {escape(_text(item.get("stratum")))}</span></h3>'
            f'<div class="side-by-side"><div><h4>Source row</h4>{left}</div>'
            f"<div><h4>Canonical record</h4>{right}</div></div></div>"
        )
    return (
        f'<section id="sample">\n<h2>Review sample</h2>\n{intro}\n{strata_table}\n' + "\n".join(cards) + "\n</section>"
    )


def _sign_off(sign_off: Any, run: Mapping[str, Any]) -> str:
    if isinstance(sign_off, Mapping):
        note = sign_off.get("note")
        body = (
            '<p class="callout ok" data-key="signed">Signed off by '
            f"<strong>{escape(_text(sign_off.get('reviewer')))}</strong> at "
            f"<time>{escape(_text(sign_off.get('at')))}</time>.</p>"
            + (f"<p>Note: {escape(_text(note))}</p>" if note else "")
        )
    else:
        body = (
            '<p class="callout" data-key="unsigned">Not signed off. After reading the review sample, the reviewer '
            f"signs it off with <code>hr-gateway sandbox sign-off {escape(_text(run.get('id')))} "
            "--reviewer NAME</code>.</p>"
        )
    return f'<section id="sign-off">\n<h2>Sign-off</h2>\n{body}\n</section>'


def _replay(report: Mapping[str, Any]) -> str:
    status = _mapping(report.get("run")).get("status")
    totals = _mapping(_mapping(report.get("summary")).get("replay"))
    groups = [_mapping(group) for group in _mapping(report.get("replay")).get("by_outcome") or []]
    total_line = ", ".join(
        f'{escape(outcome.replace("_", " "))} <strong data-key="replay-total.{outcome}">{escape(_count(totals.get(outcome)))}</strong>'
        for outcome in REPLAY_OUTCOMES
    )
    if groups:
        rows = "".join(
            "<tr>"
            f'<td><span class="outcome outcome-{escape(_token(_text(group.get("outcome"))))}">'
            f"{escape(_text(group.get('outcome')))}</span></td>"
            f'<td class="mono">{escape(_text(group.get("code")))}</td>'
            f"<td>{escape(_text(group.get('message')))}</td>"
            f'<td class="num">{escape(_count(group.get("count")))}</td>'
            f"<td>{escape(', '.join(_text(row) for row in group.get('examples') or []) or _MISSING)}</td>"
            "</tr>"
            for group in sorted(
                groups, key=lambda group: (_outcome_order(group.get("outcome")), -_int(group.get("count")))
            )
        )
        table = (
            '<table class="replay"><tr><th>outcome</th><th>bureau code</th><th>bureau message</th>'
            f'<th class="num">rows</th><th>example rows</th></tr>{rows}</table>'
        )
    else:
        table = "<p>No row has been replayed yet.</p>"
    # Rows stopped by level 1 or 2 count as not replayed in the summary but have no replay outcome of their own.
    not_replayed = totals.get("not_replayed")
    with_outcome = sum(_int(group.get("count")) for group in groups if group.get("outcome") == "not_replayed")
    note = ""
    if isinstance(not_replayed, int) and not isinstance(not_replayed, bool) and not_replayed > with_outcome:
        note = (
            f'<p class="note">Not replayed: <span data-key="not-replayed-failed">{not_replayed - with_outcome:,}'
            "</span> row(s) that failed level 1 or 2"
            + ("" if status == "completed" else " or were not reached yet")
            + (
                f", and {with_outcome:,} row(s) that passed but imply nothing the bureau could take"
                if with_outcome
                else ""
            )
            + ".</p>"
        )
    return f'<section id="replay">\n<h2>Replay</h2>\n<p>{total_line}.</p>\n{note}\n{table}\n</section>'


# -- helpers --------------------------------------------------------------------------


def _pairs_table(key_heading: str, value_heading: str, pairs: Mapping[str, Any], other: set[str], side: str) -> str:
    rows = []
    for key, value in pairs.items():
        if value is None:
            cell = f'<td class="value null">{_MISSING}</td>'
        else:
            changed = _normal(value) not in other
            cell = f'<td class="value{" changed" if changed else ""}">{escape(_text(value))}</td>'
        rows.append(f"<tr><th>{escape(_text(key))}</th>{cell}</tr>")
    return (
        f'<table class="{side}"><tr><th>{escape(key_heading)}</th><th>{escape(value_heading)}</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _value_cell(value: Any) -> str:
    if value is None:
        return f'<td class="value null">{_MISSING}</td>'
    return f'<td class="value">{escape(_text(value))}</td>'


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any, missing: str = _MISSING) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _count(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _text(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _share(value: Any, rows: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(rows, int) or rows <= 0:
        return ""
    return f' <span class="note">({100 * value / rows:.1f} %)</span>'


def _normal(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def _token(value: str) -> str:
    """A CSS class / fragment token: letters, digits, '-' and '_' only."""
    return "".join(char if char.isascii() and (char.isalnum() or char in "-_") else "-" for char in value)


def _outcome_order(outcome: Any) -> int:
    return REPLAY_OUTCOMES.index(outcome) if outcome in REPLAY_OUTCOMES else len(REPLAY_OUTCOMES)


def _duration(started: Any, finished: Any) -> str | None:
    try:
        start = dt.datetime.fromisoformat(str(started))
        end = dt.datetime.fromisoformat(str(finished))
        seconds = int((end - start).total_seconds())
    except (TypeError, ValueError):
        return None
    if seconds < 0:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {seconds:02d} s" if hours else f"{minutes} min {seconds:02d} s"
