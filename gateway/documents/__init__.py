"""Printable documents the gateway produces for upstreams and people.

``transfer_application``: the *Basic Pension Insurance Relationship Transfer
Application* (基本养老保险关系转移接续申请表) as data and as an A4 PDF.
"""

from .transfer_application import (
    FORM_TITLE,
    FORM_TITLE_EN,
    INSURANCE_LABELS,
    Applicant,
    RequestedInsurance,
    SourceHolding,
    TransferApplication,
    build_transfer_application,
    render_pdf,
)

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
