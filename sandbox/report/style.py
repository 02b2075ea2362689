"""The report page's stylesheet, inlined into every page so the file opens anywhere."""

__all__ = ["STYLESHEET"]

STYLESHEET = """
:root { color-scheme: light; --ink: #1c2833; --muted: #5d6d7e; --line: #d5d8dc; --bad: #c0392b;
        --warn: #d68910; --good: #1e8449; --changed: #fdebd0; --panel: #f8f9f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
nav a { margin-right: 14px; }
dl.run { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.value, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
td.null { color: var(--muted); }
td.changed { background: var(--changed); }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--muted); }
.status-completed, .outcome-accepted { background: var(--good); }
.status-failed, .status-interrupted, .outcome-rejected, .outcome-upstream_unavailable { background: var(--bad); }
.status-validating, .status-replaying, .outcome-transfer_required { background: var(--warn); }
.outcome { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; background: var(--muted); }
.severity-error { color: var(--bad); font-weight: 600; }
.severity-warning { color: var(--warn); font-weight: 600; }
.note { color: var(--muted); }
.callout { border-left: 4px solid var(--warn); background: var(--panel); padding: 8px 12px; margin: 8px 0; }
.callout.ok { border-left-color: var(--good); }
.sample-item { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.side-by-side table { width: 100%; }
.chart text { font: 12px system-ui, sans-serif; fill: var(--ink); }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
code { background: var(--panel); padding: 1px 4px; border-radius: 3px; }
@media print { nav { display: none; } .sample-item { break-inside: avoid; } }
"""
