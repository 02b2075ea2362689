"""The *Basic Pension Insurance Relationship Transfer Application*
(基本养老保险关系转移接续申请表): the form a transfer submits to the source bureau,
as data (``TransferApplication``) and as a printable A4 PDF (``render_pdf``).

The data is built from what the gateway already holds: the transfer's id (the
application number), the person, the two regions, the requested insurance types and
the participation records a search found in the source region. The PDF is rendered
with reportlab in invariant mode, so the same application always gives the same
bytes. Chinese (and Latin) text uses the Adobe CID font ``STSong-Light`` that every
PDF reader provides, so no font file ships with the gateway. The PDF metadata holds
only the form's title and the producer, never the person's name or ID number.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Literal
from xml.sax.saxutils import escape

import msgspec

from adapters.models import INSURANCE_TYPES, InsuranceType, ParticipationRecord

from ..errors import ProblemError
from ..policy import region_name
from ..validation import check_id_number

__all__ = [
    "FORM_TITLE",
    "FORM_TITLE_EN",
    "INSURANCE_LABELS",
    "Applicant",
    "RequestedInsurance",
    "SourceHolding",
    "TransferApplication",
    "build_transfer_application",
    "render_pdf",
]

FORM_TITLE = "基本养老保险关系转移接续申请表"
FORM_TITLE_EN = "Basic Pension Insurance Relationship Transfer Application"

INSURANCE_LABELS: dict[InsuranceType, str] = {
    "pension": "基本养老保险",
    "medical": "基本医疗保险",
    "unemployment": "失业保险",
    "work_injury": "工伤保险",
    "maternity": "生育保险",
}

Gender = Literal["male", "female"]
_GENDER_LABELS: dict[str, str] = {"male": "男", "female": "女"}


class Applicant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The insured person. ``gender`` and ``birth_date`` are derived from the ID number
    (17th digit odd: male; digits 7-14: the birth date). Every field is PII."""

    name: str
    id_number: str
    gender: Gender
    birth_date: dt.date

    @property
    def gender_label(self) -> str:
        return _GENDER_LABELS[self.gender]


class SourceHolding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the source bureau holds for one insurance type, as far as the gateway knows."""

    start_date: dt.date | None = None
    paid_months: int | None = None
    employer_name: str | None = None
    last_paid_period: str | None = None  # YYYY-MM


class RequestedInsurance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One insurance type whose relationship is to move; ``source`` is ``None`` when the
    gateway knows no record of it in the source region."""

    insurance_type: InsuranceType
    label: str  # the Chinese name, e.g. 基本养老保险
    source: SourceHolding | None = None


class TransferApplication(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The transfer application form as data (build it with ``build_transfer_application``)."""

    application_no: str  # the gateway's transfer id
    applied_on: dt.date
    applicant: Applicant
    from_region: str
    from_region_name: str
    to_region: str
    to_region_name: str
    insurance: tuple[RequestedInsurance, ...]  # in canonical order, no repeats
    remarks: str = ""

    @property
    def insurance_types(self) -> tuple[InsuranceType, ...]:
        return tuple(item.insurance_type for item in self.insurance)


# -- building --------------------------------------------------------------------------

# When the source region holds several records of one type, the one the form shows:
# an active relationship first, then a suspended one, then a terminated one; among
# equals the latest start. ``transferred`` records have already moved elsewhere.
_STATUS_PREFERENCE = {"active": 0, "suspended": 1, "terminated": 2}


def build_transfer_application(
    *,
    application_no: str,
    applied_on: dt.date,
    id_number: str,
    name: str,
    from_region: str,
    to_region: str,
    insurance_types: Iterable[InsuranceType],
    source_records: Sequence[ParticipationRecord] = (),
    remarks: str = "",
) -> TransferApplication:
    """The application for moving ``insurance_types`` of one person from ``from_region``
    to ``to_region``.

    ``id_number`` is checked like every ID number the gateway accepts (``invalid_id_number``);
    regions must be known division codes (``unknown_region``) and differ; insurance types
    must be canonical and at least one (``invalid_field``). Of ``source_records`` only
    those of ``from_region`` and a requested type are used.
    """
    if not application_no.strip():
        raise ProblemError("invalid_field", "application_no: must not be empty", field="application_no")
    if not name.strip():
        raise ProblemError("invalid_field", "name: must not be empty", field="name")
    number = check_id_number(id_number, "id_number")
    from_name = _region_zh(from_region, "from_region")
    to_name = _region_zh(to_region, "to_region")
    if from_region == to_region:
        raise ProblemError("invalid_field", "to_region: must differ from from_region", field="to_region")

    requested = set()
    for insurance_type in insurance_types:
        if insurance_type not in INSURANCE_LABELS:
            raise ProblemError(
                "invalid_field",
                f"insurance_types: unknown insurance type {insurance_type!r}",
                field="insurance_types",
            )
        requested.add(insurance_type)
    if not requested:
        raise ProblemError("invalid_field", "insurance_types: at least one is required", field="insurance_types")

    chosen: dict[str, ParticipationRecord] = {}
    for record in source_records:
        if record.region != from_region or record.insurance_type not in requested:
            continue
        if record.status not in _STATUS_PREFERENCE:
            continue
        current = chosen.get(record.insurance_type)
        if current is None or _rank(record) < _rank(current):
            chosen[record.insurance_type] = record

    insurance = tuple(
        RequestedInsurance(
            insurance_type=t,
            label=INSURANCE_LABELS[t],
            source=_holding(chosen[t]) if t in chosen else None,
        )
        for t in INSURANCE_TYPES
        if t in requested
    )
    return TransferApplication(
        application_no=application_no,
        applied_on=applied_on,
        applicant=Applicant(
            name=name.strip(),
            id_number=number,
            gender="male" if int(number[16]) % 2 else "female",
            birth_date=dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
        ),
        from_region=from_region,
        from_region_name=from_name,
        to_region=to_region,
        to_region_name=to_name,
        insurance=insurance,
        remarks=remarks,
    )


def _region_zh(code: str, field: str) -> str:
    names = region_name(code) if len(code) == 6 and code.isdigit() else None
    if names is None:
        raise ProblemError("unknown_region", f"{field}: {code!r} is not a known region", field=field)
    return names.zh


def _rank(record: ParticipationRecord) -> tuple[int, int]:
    start = record.start_date.toordinal() if record.start_date else 0
    return (_STATUS_PREFERENCE[record.status], -start)


def _holding(record: ParticipationRecord) -> SourceHolding:
    return SourceHolding(
        start_date=record.start_date,
        paid_months=record.paid_months,
        employer_name=record.employer.name if record.employer else None,
        last_paid_period=record.last_paid_period,
    )


# -- rendering ---------------------------------------------------------------------------

_FONT = "STSong-Light"  # Adobe-GB1 CID font, encoded UniGB-UCS2-H; provided by PDF readers
_BLANK = "—"


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(_FONT))


def _date(value: dt.date | None) -> str:
    return f"{value.year}年{value.month:02d}月{value.day:02d}日" if value else _BLANK


def _period(value: str | None) -> str:
    if not value:
        return _BLANK
    year, _, month = value.partition("-")
    return f"{year}年{month}月" if month else value


def render_pdf(application: TransferApplication) -> bytes:
    """The application as a printable A4 PDF (the same bytes for the same application)."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER, TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font()

    body = ParagraphStyle("body", fontName=_FONT, fontSize=10, leading=14, wordWrap="CJK")
    label = ParagraphStyle("label", parent=body, alignment=TA_CENTER)
    section = ParagraphStyle("section", parent=body, fontSize=10.5, alignment=TA_LEFT)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#444444"))
    title = ParagraphStyle("title", fontName=_FONT, fontSize=18, leading=24, alignment=TA_CENTER)
    subtitle = ParagraphStyle("subtitle", fontName=_FONT, fontSize=9.5, leading=13, alignment=TA_CENTER)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    def b(text: str) -> Paragraph:
        return p(text, label)

    a = application
    person = a.applicant
    page_width, _ = A4
    margin = 18 * mm
    width = page_width - 2 * margin
    cols = [w * width for w in (0.16, 0.18, 0.16, 0.15, 0.15, 0.20)]

    rows: list[list[object]] = []
    styles: list[tuple] = []

    def section_row(text: str) -> None:
        styles.append(("SPAN", (0, len(rows)), (-1, len(rows))))
        styles.append(("BACKGROUND", (0, len(rows)), (-1, len(rows)), colors.HexColor("#E8E8E8")))
        rows.append([p(text, section), "", "", "", "", ""])

    def span(row: int, first: int, last: int) -> None:
        styles.append(("SPAN", (first, row), (last, row)))

    section_row("一、申请人基本信息（Applicant）")
    span(len(rows), 1, 3)
    rows.append([b("姓名"), p(person.name), "", "", b("性别"), p(person.gender_label)])
    span(len(rows), 1, 2)
    span(len(rows), 4, 5)
    rows.append([b("公民身份号码"), p(person.id_number), "", b("出生日期"), p(_date(person.birth_date)), ""])

    section_row("二、转出地社会保险经办机构（Source bureau）")
    span(len(rows), 3, 5)
    rows.append([b("行政区划代码"), p(a.from_region), b("转出地"), p(a.from_region_name), "", ""])
    section_row("三、转入地社会保险经办机构（Target bureau）")
    span(len(rows), 3, 5)
    rows.append([b("行政区划代码"), p(a.to_region), b("转入地"), p(a.to_region_name), "", ""])

    section_row("四、申请转移接续的险种及转出地参保情况（Insurance types）")
    header = len(rows)
    span(header, 4, 5)
    rows.append([b("险种"), b("参保起始日期"), b("累计缴费月数"), b("最后缴费年月"), b("参保单位"), ""])
    styles.append(("BACKGROUND", (0, header), (-1, header), colors.HexColor("#F4F4F4")))
    for item in a.insurance:
        held = item.source or SourceHolding()
        span(len(rows), 4, 5)
        rows.append([
            b(item.label),
            b(_date(held.start_date)),
            b(str(held.paid_months) if held.paid_months is not None else _BLANK),
            b(_period(held.last_paid_period)),
            p(held.employer_name or _BLANK),
            "",
        ])

    span(len(rows), 1, 5)
    rows.append([b("备注"), [p(a.remarks or _BLANK), Spacer(1, 8 * mm)], "", "", "", ""])

    grid = Table(rows, colWidths=cols)
    grid.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
        ("INNERGRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
        *styles,
    ]))

    sign_lines = [
        ("申请人签字", "本人承诺所填信息真实有效。"),
        ("转出地社保经办机构（章）", "经办人："),
        ("转入地社保经办机构（章）", "经办人："),
    ]
    signatures = Table(
        [
            [p(f"{head}：", section) for head, _ in sign_lines],
            [p(note, small) for _, note in sign_lines],
            [p("") for _ in sign_lines],
            [p("日期：　　　　年　　月　　日") for _ in sign_lines],
        ],
        colWidths=[width / 3] * 3,
        rowHeights=[None, None, 30 * mm, None],  # room for signatures and the bureaus' seals
    )
    signatures.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.2, colors.black),
        ("LINEBEFORE", (1, 0), (-1, -1), 0.5, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 8),
    ]))

    meta = Table(
        [[p(f"申请编号：{a.application_no}"), p(f"申请日期：{_date(a.applied_on)}", ParagraphStyle("r", parent=body, alignment=2))]],
        colWidths=[width * 0.6, width * 0.4],
    )
    meta.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))

    footer_text = f"申请编号 Application No. {a.application_no}　·　generated by hr-gateway"

    def footer(canvas, doc) -> None:  # reportlab's page callback
        canvas.saveState()
        canvas.setFont(_FONT, 8)
        canvas.setStrokeColor(colors.HexColor("#888888"))
        canvas.setLineWidth(0.4)
        canvas.line(margin, 14 * mm, page_width - margin, 14 * mm)
        canvas.drawString(margin, 10 * mm, footer_text)
        canvas.drawRightString(page_width - margin, 10 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=16 * mm,
        bottomMargin=20 * mm,
        title=FORM_TITLE,
        subject=FORM_TITLE_EN,
        author="hr-gateway",
        creator="hr-gateway",
        producer="hr-gateway",
        keywords="",
        invariant=True,
        lang="zh-CN",
        displayDocTitle=True,
        initialFontName=_FONT,
    )
    doc.build(
        [
            p(FORM_TITLE, title),
            p(FORM_TITLE_EN, subtitle),
            Spacer(1, 5 * mm),
            meta,
            Spacer(1, 2 * mm),
            grid,
            signatures,
        ],
        onFirstPage=footer,
        onLaterPages=footer,
    )
    return buffer.getvalue()
