"""The migration report rendered as HTML and JSON from a hand-built report dict."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest

from sandbox.report import render_html, render_json

HOSTILE = '<script>alert("x")</script>'


def _report() -> dict:
    return {
        "run": {
            "id": "mig_4f2a9c0d1e",
            "status": "completed",
            "source": {"file": "employees.csv", "format": "csv", "encoding": "gbk", "rows": 1234},
            "mapping": "mapping.toml",
            "started_at": "2026-11-22T08:00:00Z",
            "finished_at": "2026-11-22T08:03:25Z",
            "batch_size": 200,
            "concurrency": 4,
            "seed": 20261122,
        },
        "summary": {
            "rows": 1234,
            "level1": {"passed": 1190, "failed": 44},
            "level2": {"passed": 1101, "failed": 89, "warnings": 17},
            "replay": {
                "accepted": 1050,
                "rejected": 31,
                "transfer_required": 12,
                "upstream_unavailable": 8,
                "not_replayed": 133,
            },
        },
        "rules": [
            {
                "rule": "invalid_id_number",
                "level": 2,
                "title": "Resident ID number fails its check digit",
                "severity": "error",
                "count": 57,
                "examples": [
                    {
                        "row": 14,
                        "column": "身份证号",
                        "field": "id_number",
                        "value": "4401**********0214",
                        "message": "check digit does not match",
                        "related_row": None,
                    }
                ],
            },
            {
                "rule": "duplicate_id",
                "level": 2,
                "title": "The same person appears twice",
                "severity": "error",
                "count": 32,
                "examples": [
                    {
                        "row": 230,
                        "column": "身份证号",
                        "field": "id_number",
                        "value": "4301**********0356",
                        "message": "same ID number as an earlier row",
                        "related_row": 77,
                    }
                ],
            },
            {
                "rule": "ragged_row",
                "level": 1,
                "title": "Row has a different number of cells than the header",
                "severity": "error",
                "count": 44,
                "examples": [
                    {
                        "row": 9,
                        "column": None,
                        "field": None,
                        "value": None,
                        "message": "9 cells, header has 12",
                        "related_row": None,
                    }
                ],
            },
            {
                "rule": "base_out_of_range",
                "level": 2,
                "title": "Contribution base outside the region's floor and ceiling",
                "severity": "warning",
                "count": 17,
                "examples": [
                    {
                        "row": 402,
                        "column": "缴费基数",
                        "field": "contribution_base",
                        "value": "2100.00",
                        "message": "below the 430100 floor 3604.00 for 2024",
                        "related_row": None,
                    }
                ],
            },
        ],
        "sample": {
            "seed": 20261122,
            "per_stratum": 5,
            "items": [
                {
                    "row": 2,
                    "stratum": "430100/passed",
                    "source": {"姓名": "王*", "身份证号": "4401**********0213", "入职日期": "2024/3/1", "性别": "女"},
                    "canonical": {
                        "name": "王*",
                        "id_number": "4401**********0213",
                        "hire_date": "2024-03-01",
                        "gender": "female",
                        "leave_date": None,
                    },
                },
                {
                    "row": 77,
                    "stratum": "440100/failed_level2",
                    "source": {"姓名": "李*", "身份证号": "4301**********0356"},
                    "canonical": {"name": "李*", "id_number": "4301**********0356"},
                },
            ],
        },
        "sign_off": None,
        "replay": {
            "by_outcome": [
                {"outcome": "accepted", "code": None, "message": None, "count": 1050, "examples": [2, 3, 4]},
                {
                    "outcome": "rejected",
                    "code": "2005",
                    "message": "name does not match the bureau's records",
                    "count": 31,
                    "examples": [18, 96],
                },
                {
                    "outcome": "transfer_required",
                    "code": None,
                    "message": "pension active in 440100",
                    "count": 12,
                    "examples": [41],
                },
                {
                    "outcome": "upstream_unavailable",
                    "code": "5000",
                    "message": "bureau answered 503 after retries",
                    "count": 8,
                    "examples": [512],
                },
            ]
        },
    }


class _Collector(HTMLParser):
    """Collects elements by id, data-key text and the page's text, and fails on unbalanced sections."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.data_keys: dict[str, str] = {}
        self.tags: list[str] = []
        self._key: str | None = None
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            target = attributes.get(name)
            if target and not target.startswith("#"):
                self.external.append(target)
        if "id" in attributes:
            self.ids.add(attributes["id"] or "")
        if "data-key" in attributes:
            self._key = attributes["data-key"]

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self.data_keys[self._key] = self.data_keys.get(self._key, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._key = None


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.DOTALL)
    assert match, f"section {section_id} missing"
    return match.group(1)


def test_every_section_is_present_and_self_contained() -> None:
    page = render_html(_report())
    parsed = _parse(page)
    assert {"run", "summary", "rules", "sample", "sign-off", "replay"} <= parsed.ids
    assert parsed.scripts == 0
    assert parsed.external == [], "the page must load nothing from elsewhere"
    assert "<svg" in _section(page, "rules")
    assert page.startswith("<!DOCTYPE html>")


def test_header_names_run_file_mapping_and_times() -> None:
    page = render_html(_report())
    header = page[page.index('<header id="run">') : page.index("</header>")]
    for text in (
        "mig_4f2a9c0d1e",
        "employees.csv",
        "gbk",
        "mapping.toml",
        "2026-11-22T08:00:00Z",
        "2026-11-22T08:03:25Z",
        "3 min 25 s",
        "20261122",
        "200 / 4",
        "1,234",
    ):
        assert text in header, text
    assert 'class="status status-completed">completed<' in header


def test_summary_counts_come_from_the_dict() -> None:
    report = _report()
    keys = _parse(render_html(report)).data_keys
    assert keys["rows"] == "1,234"
    assert keys["level1.passed"] == "1,190" and keys["level1.failed"] == "44"
    assert keys["level2.passed"] == "1,101" and keys["level2.failed"] == "89" and keys["level2.warnings"] == "17"
    assert keys["sample.sampled"] == "2" and keys["sample.strata"] == "2"
    assert keys["sign_off"] == "awaiting sign-off"
    for outcome, count in report["summary"]["replay"].items():
        assert keys[f"replay.{outcome}"] == f"{count:,}"

    report["summary"]["level1"]["failed"] = 4321
    report["summary"]["replay"]["rejected"] = 7
    changed = _parse(render_html(report)).data_keys
    assert changed["level1.failed"] == "4,321" and changed["replay.rejected"] == "7"


def test_rules_are_grouped_with_their_examples_and_charted() -> None:
    page = render_html(_report())
    rules = _section(page, "rules")
    blocks = dict(re.findall(r'<div class="rule" data-rule="([^"]+)">(.*?)</div>', rules, re.DOTALL))
    assert set(blocks) == {"invalid_id_number", "duplicate_id", "ragged_row", "base_out_of_range"}
    assert 'data-key="count">57<' in blocks["invalid_id_number"]
    assert "4401**********0214" in blocks["invalid_id_number"]
    assert "check digit does not match" in blocks["invalid_id_number"]
    assert "身份证号" in blocks["invalid_id_number"]
    # the related row of a cross-row conflict is shown next to the row it was found on
    assert re.search(r'<td class="num">230</td>.*<td class="num">77</td>', blocks["duplicate_id"], re.DOTALL)
    assert 'class="severity-warning">warning<' in blocks["base_out_of_range"]
    # level 1 rules come before level 2 ones
    assert rules.index('data-rule="ragged_row"><h3') < rules.index('data-rule="invalid_id_number"><h3')

    bars = re.findall(r'<g class="bar" data-rule="([^"]+)" data-count="(\d+)">.*?<rect [^>]*width="(\d+)"', rules)
    assert [(rule, int(count)) for rule, count, _ in bars] == [
        ("invalid_id_number", 57),
        ("ragged_row", 44),
        ("duplicate_id", 32),
        ("base_out_of_range", 17),
    ]
    widths = [int(width) for _, _, width in bars]
    assert widths[0] == max(widths) and widths == sorted(widths, reverse=True)
    assert widths[3] == round(widths[0] * 17 / 57)


def test_sample_shows_source_and_canonical_side_by_side_with_differences_highlighted() -> None:
    sample = _section(render_html(_report()), "sample")
    card = re.search(r'<div class="sample-item" data-row="2">(.*?)</div></div></div>', sample, re.DOTALL).group(1)
    source = re.search(r'<table class="source">(.*?)</table>', card, re.DOTALL).group(1)
    canonical = re.search(r'<table class="canonical">(.*?)</table>', card, re.DOTALL).group(1)
    assert "430100/passed" in card
    # unchanged values are plain, converted ones highlighted on both sides
    assert '<th>姓名</th><td class="value">王*</td>' in source
    assert '<th>入职日期</th><td class="value changed">2024/3/1</td>' in source
    assert '<th>hire_date</th><td class="value changed">2024-03-01</td>' in canonical
    assert '<th>gender</th><td class="value changed">female</td>' in canonical
    assert '<th>id_number</th><td class="value">4401**********0213</td>' in canonical
    assert '<th>leave_date</th><td class="value null">' in canonical
    assert 'data-key="per_stratum">5<' in sample and 'data-key="seed">20261122<' in sample


def test_sign_off_status() -> None:
    report = _report()
    unsigned = _section(render_html(report), "sign-off")
    assert 'data-key="unsigned"' in unsigned
    assert "hr-gateway sandbox sign-off mig_4f2a9c0d1e --reviewer NAME" in unsigned

    report["sign_off"] = {"reviewer": "Zhou Min", "at": "2026-11-22T09:10:00Z", "note": "20 rows read, all fine"}
    page = render_html(report)
    signed = _section(page, "sign-off")
    assert "Zhou Min" in signed and "2026-11-22T09:10:00Z" in signed and "20 rows read, all fine" in signed
    assert _parse(page).data_keys["sign_off"] == "signed off"


def test_replay_outcomes_with_bureau_codes_and_example_rows() -> None:
    replay = _section(render_html(_report()), "replay")
    rows = re.findall(r"<tr><td><span class=\"outcome outcome-([a-z_]+)\">.*?</tr>", replay, re.DOTALL)
    assert rows == ["accepted", "rejected", "transfer_required", "upstream_unavailable"]
    rejected = re.search(r"outcome-rejected.*?</tr>", replay, re.DOTALL).group(0)
    assert "2005" in rejected and "name does not match the bureau&#x27;s records" in rejected
    assert '<td class="num">31</td>' in rejected and "18, 96" in rejected
    assert 'data-key="replay-total.not_replayed">133<' in replay


@pytest.mark.parametrize(
    "path",
    [
        ("run", "source", "file"),
        ("run", "mapping"),
        ("rules", 0, "examples", 0, "value"),
        ("rules", 0, "examples", 0, "message"),
        ("rules", 0, "title"),
        ("rules", 0, "rule"),
        ("sample", "items", 0, "source", "姓名"),
        ("sample", "items", 0, "canonical", "name"),
        ("replay", "by_outcome", 1, "message"),
        ("replay", "by_outcome", 1, "code"),
    ],
)
def test_untrusted_values_are_escaped(path: tuple) -> None:
    report = _report()
    target = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = HOSTILE
    page = render_html(report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_hostile_column_name_and_sign_off_are_escaped() -> None:
    report = _report()
    report["sample"]["items"][0]["source"][HOSTILE] = "x"
    report["sign_off"] = {"reviewer": HOSTILE, "at": "2026-11-22T09:10:00Z", "note": '"><img src=x onerror=alert(1)>'}
    page = render_html(report)
    assert "<script" not in page and "<img" not in page
    assert not _parse(page).external


def test_a_run_in_progress_renders_without_sample_sign_off_or_replay() -> None:
    report = _report()
    report["run"].update(status="interrupted", finished_at=None)
    report["rules"] = []
    report["sample"] = {"seed": 1, "per_stratum": 5, "items": []}
    report["replay"] = {"by_outcome": []}
    page = render_html(report)
    assert "--resume mig_4f2a9c0d1e" in page
    assert "No row broke any rule." in page and "No rows sampled." in page
    assert "No row has been replayed yet." in page
    assert "No findings." in _section(page, "rules")


def test_json_is_exactly_the_report_dict() -> None:
    report = _report()
    original = copy.deepcopy(report)
    body = render_json(report)
    assert isinstance(body, bytes)
    assert json.loads(body) == original
    assert report == original
    assert "身份证号".encode() in body, "non-ASCII text stays readable"
    assert list(json.loads(body)) == ["run", "summary", "rules", "sample", "sign_off", "replay"]


def test_undecodable_bytes_in_a_message_do_not_break_either_rendering() -> None:
    report = _report()
    report["rules"][2]["examples"][0]["message"] = "row 9: bytes \udcb2\udcbb cannot be decoded as gbk"
    page = render_html(report)
    page.encode("utf-8")
    assert "bytes \ufffd\ufffd cannot" in page
    document = json.loads(render_json(report))
    assert document["rules"][2]["examples"][0]["message"] == "row 9: bytes \ufffd\ufffd cannot be decoded as gbk"


def test_rows_not_replayed_are_explained() -> None:
    report = _report()
    report["replay"]["by_outcome"].append(
        {
            "outcome": "not_replayed",
            "code": "no_leave_date",
            "message": "departed without a leave date",
            "count": 3,
            "examples": [96],
        }
    )
    replay = _section(render_html(report), "replay")
    assert 'data-key="not-replayed-failed">130<' in replay
    assert "3 row(s) that passed but imply nothing" in replay
    assert "no_leave_date" in replay


def test_rows_not_reached_by_an_unfinished_run_are_not_called_failures() -> None:
    report = _report()
    report["run"]["status"] = "interrupted"
    assert "failed level 1 or 2 or were not reached yet" in _section(render_html(report), "replay")
    report["run"]["status"] = "completed"
    assert "not reached" not in _section(render_html(report), "replay")
