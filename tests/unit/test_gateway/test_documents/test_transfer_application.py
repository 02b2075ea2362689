"""The transfer application form: the data built from a transfer, and its PDF."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import zlib

import msgspec
import pytest
from pypdf import PdfReader

from adapters.models import Employer, ParticipationRecord
from gateway.documents import (
    FORM_TITLE,
    TransferApplication,
    build_transfer_application,
    render_pdf,
)
from gateway.errors import ProblemError

WANG_FANG_ID = "440104199003120213"  # 17th digit 1: male (as the number says)
LIU_YANG_ID = "430104199306150282"  # 17th digit 8: female
GUANGZHOU_EMPLOYER = Employer("91440101MA59BX4C3Y", "广州市天河区示例科技有限公司")


def record(region, insurance_type, status="active", *, start=dt.date(2021, 7, 1), months=36, employer=GUANGZHOU_EMPLOYER, last="2024-06"):
    return ParticipationRecord(
        region=region,
        insurance_type=insurance_type,
        status=status,
        employer=employer,
        start_date=start,
        end_date=None,
        paid_months=months,
        contribution_base=None,
        last_paid_period=last,
    )


def build(**overrides) -> TransferApplication:
    args = dict(
        application_no="trf_01J9Z3K4QW8E6B7N2M5R",
        applied_on=dt.date(2024, 7, 15),
        id_number=WANG_FANG_ID,
        name="王芳",
        from_region="440100",
        to_region="430100",
        insurance_types=("pension", "medical"),
        source_records=(record("440100", "pension"), record("440100", "medical", employer=None)),
    )
    args.update(overrides)
    return build_transfer_application(**args)


def page_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


# -- the data ---------------------------------------------------------------------


def test_applicant_derived_from_id_number_male():
    application = build()
    assert application.applicant.name == "王芳"
    assert application.applicant.id_number == WANG_FANG_ID
    assert application.applicant.gender == "male"
    assert application.applicant.gender_label == "男"
    assert application.applicant.birth_date == dt.date(1990, 3, 12)


def test_applicant_derived_from_id_number_female():
    application = build(id_number=LIU_YANG_ID, name="Liu Yang", from_region="430100", to_region="440100")
    assert application.applicant.gender == "female"
    assert application.applicant.gender_label == "女"
    assert application.applicant.birth_date == dt.date(1993, 6, 15)


def test_header_fields_and_region_names():
    application = build()
    assert application.application_no == "trf_01J9Z3K4QW8E6B7N2M5R"
    assert application.applied_on == dt.date(2024, 7, 15)
    assert (application.from_region, application.from_region_name) == ("440100", "广州市")
    assert (application.to_region, application.to_region_name) == ("430100", "长沙市")
    assert application.remarks == ""
    assert build(remarks="随工作调动").remarks == "随工作调动"


def test_region_outside_the_shipped_policies_named_from_the_division_list():
    assert build(to_region="110100").to_region_name == "北京市"


def test_only_requested_types_in_canonical_order_with_labels():
    application = build(insurance_types=["unemployment", "pension", "pension"])
    assert application.insurance_types == ("pension", "unemployment")
    assert [item.label for item in application.insurance] == ["基本养老保险", "失业保险"]


def test_all_labels():
    application = build(insurance_types=["maternity", "work_injury", "unemployment", "medical", "pension"])
    assert [(item.insurance_type, item.label) for item in application.insurance] == [
        ("pension", "基本养老保险"),
        ("medical", "基本医疗保险"),
        ("unemployment", "失业保险"),
        ("work_injury", "工伤保险"),
        ("maternity", "生育保险"),
    ]


def test_source_holdings_only_from_the_source_region_and_requested_types():
    records = (
        record("440100", "pension", months=36, last="2024-06"),
        record("440100", "maternity", months=12),  # not requested
        record("430100", "medical", months=99, start=dt.date(2010, 1, 1)),  # the target region
        record("440300", "pension", months=77),  # a third region
    )
    application = build(insurance_types=("pension", "medical"), source_records=records)
    pension, medical = application.insurance
    assert pension.source is not None
    assert pension.source.paid_months == 36
    assert pension.source.start_date == dt.date(2021, 7, 1)
    assert pension.source.employer_name == GUANGZHOU_EMPLOYER.name
    assert pension.source.last_paid_period == "2024-06"
    assert medical.source is None  # only the target region holds medical
    assert "maternity" not in application.insurance_types


def test_source_holding_without_employer_or_dates():
    application = build(
        insurance_types=("medical",),
        source_records=(record("440100", "medical", employer=None, start=None, last=None, months=0),),
    )
    (medical,) = application.insurance
    assert medical.source is not None
    assert medical.source.employer_name is None and medical.source.start_date is None
    assert medical.source.paid_months == 0 and medical.source.last_paid_period is None


def test_active_record_preferred_and_transferred_records_ignored():
    records = (
        record("440100", "pension", "terminated", start=dt.date(2015, 1, 1), months=24),
        record("440100", "pension", "transferred", start=dt.date(2023, 1, 1), months=5),
        record("440100", "pension", "active", start=dt.date(2021, 7, 1), months=36),
    )
    (pension,) = build(insurance_types=("pension",), source_records=records).insurance
    assert pension.source is not None and pension.source.paid_months == 36
    (only_transferred,) = build(insurance_types=("pension",), source_records=records[1:2]).insurance
    assert only_transferred.source is None


def test_struct_is_frozen_and_round_trips_as_json():
    application = build()
    with pytest.raises(AttributeError):
        application.remarks = "x"  # type: ignore[misc]
    raw = msgspec.json.encode(application)
    assert msgspec.json.decode(raw, type=TransferApplication) == application


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"id_number": "440104199003120214"}, "invalid_id_number", "id_number"),
        ({"from_region": "999999"}, "unknown_region", "from_region"),
        ({"to_region": "4301"}, "unknown_region", "to_region"),
        ({"to_region": "440100"}, "invalid_field", "to_region"),
        ({"insurance_types": ()}, "invalid_field", "insurance_types"),
        ({"insurance_types": ("pension", "dental")}, "invalid_field", "insurance_types"),
        ({"name": "  "}, "invalid_field", "name"),
        ({"application_no": ""}, "invalid_field", "application_no"),
    ],
)
def test_refused_input(overrides, code, field):
    with pytest.raises(ProblemError) as info:
        build(**overrides)
    assert info.value.code == code and info.value.extensions["field"] == field


# -- the PDF ------------------------------------------------------------------------


def test_pdf_is_a_one_page_a4_pdf():
    pdf = render_pdf(build())
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_pdf_is_reproducible_byte_for_byte():
    application = build()
    first = render_pdf(application)
    assert render_pdf(application) == first
    assert render_pdf(build()) == first
    assert render_pdf(build(remarks="x")) != first


def test_pdf_is_reproducible_in_a_fresh_process():
    """No process state (font registration order, clock, object ids) leaks into the bytes."""
    code = (
        "import sys, datetime as dt\n"
        "from gateway.documents import build_transfer_application, render_pdf\n"
        "a = build_transfer_application(application_no='trf_01J9Z3K4QW8E6B7N2M5R', applied_on=dt.date(2024, 7, 15),"
        f" id_number={WANG_FANG_ID!r}, name='王芳', from_region='440100', to_region='430100', insurance_types=('pension',))\n"
        "sys.stdout.buffer.write(render_pdf(a))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert fresh == render_pdf(build(insurance_types=("pension",), source_records=()))


def test_pdf_text_has_title_person_regions_and_form_parts():
    application = build(insurance_types=("pension", "medical", "unemployment"), remarks="随工作调动")
    text = page_text(render_pdf(application))
    for expected in (
        FORM_TITLE,
        "王芳",
        WANG_FANG_ID,
        "广州市",
        "长沙市",
        "440100",
        "430100",
        "男",
        "1990年03月12日",
        "基本养老保险",
        "基本医疗保险",
        "失业保险",
        "2021年07月01日",
        "2024年06月",
        GUANGZHOU_EMPLOYER.name,
        "随工作调动",
        "申请人签字",
        "转出地社保经办机构（章）",
        "转入地社保经办机构（章）",
        "trf_01J9Z3K4QW8E6B7N2M5R",
        "generated by hr-gateway",
    ):
        assert expected in text, expected
    assert "工伤保险" not in text and "生育保险" not in text


@pytest.mark.parametrize("name", ["Wang Fang", "王芳", "王 Fang", "阿依古丽·买买提"])
def test_names_in_chinese_latin_or_both_render(name):
    text = page_text(render_pdf(build(name=name)))
    assert name in text


def test_markup_characters_in_free_text_are_printed_as_is():
    text = page_text(render_pdf(build(name="O'Brien & <Wang>", remarks="a<b>&c")))
    assert "O'Brien & <Wang>" in text and "a<b>&c" in text


def test_chinese_set_in_the_builtin_cid_font_without_embedding():
    reader = PdfReader(io.BytesIO(render_pdf(build())))
    fonts = [f.get_object() for f in reader.pages[0]["/Resources"]["/Font"].values()]
    cid = [f for f in fonts if f["/BaseFont"] == "/STSong-Light"]
    assert len(cid) == 1
    (font,) = cid
    assert font["/Subtype"] == "/Type0" and font["/Encoding"] == "/UniGB-UCS2-H"
    (descendant,) = [d.get_object() for d in font["/DescendantFonts"]]
    assert descendant["/CIDSystemInfo"]["/Ordering"] == "GB1"
    assert not any(k in descendant["/FontDescriptor"] for k in ("/FontFile", "/FontFile2", "/FontFile3"))


def test_metadata_has_title_and_no_personal_data():
    application = build(name="王芳 Wang Fang")
    pdf = render_pdf(application)
    meta = PdfReader(io.BytesIO(pdf)).metadata
    assert meta is not None and meta.title == FORM_TITLE
    values = " ".join(str(v) for v in meta.values())
    for secret in (WANG_FANG_ID, "王芳", "Wang Fang", "1990"):
        assert secret not in values
    # nor in any uncompressed XMP or info object elsewhere in the file
    assert WANG_FANG_ID.encode() not in pdf.split(b"stream", 1)[0]
    assert b"/Metadata" not in pdf or WANG_FANG_ID.encode() not in zlib_streams(pdf)


def zlib_streams(pdf: bytes) -> bytes:
    """Every stream's bytes, inflated where compressed (to look for metadata streams)."""
    out = []
    for chunk in pdf.split(b"stream")[1::2]:
        body = chunk.split(b"endstream", 1)[0].strip(b"\r\n")
        try:
            out.append(zlib.decompress(body))
        except zlib.error:
            out.append(body)
    return b"".join(out)


def test_long_free_text_still_one_page_and_complete():
    remarks = "因工作调动，申请将基本养老保险关系由广州市转入长沙市。" * 4
    text = page_text(render_pdf(build(remarks=remarks, insurance_types=("pension", "medical", "unemployment", "work_injury", "maternity"))))
    assert text.replace("\n", "").count("因工作调动") == 4


def test_very_long_name_wraps_inside_its_cell():
    name = "Muhammad Abdullah bin Ahmad Al-Rashid 穆罕默德·阿卜杜拉"
    text = page_text(render_pdf(build(name=name)))
    assert name.replace(" ", "") in text.replace("\n", "").replace(" ", "")
