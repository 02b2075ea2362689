"""The accounts the gateway may pay from, and their statements.

A bank instance lists its debtor accounts in its configuration
(``options.accounts = [{account, name, bank_code}]``). The API names an
account by an opaque id derived with the keyed blind index, so an account number
never appears in a URL; statements come from banks that declare
``Capability.STATEMENTS`` and are reconciled against the gateway's payments by the
end-to-end reference each payment carried.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import AccountParty, BankAdapter, CallContext, Capability, Statements, UpstreamError, UpstreamNotFound

from ..api.schemas import AccountOut, StatementEntryOut, StatementOut
from ..auth import Client
from ..encryption import FieldCipher, mask_account_number, mask_name
from ..errors import ProblemError
from ..registry import UpstreamSet
from ..store import payments
from .upstream_outcomes import FailureKind, classify

__all__ = ["ConfiguredAccount", "StatementService", "configured_accounts", "debtor_party"]

#: The longest statement period one request may ask for.
MAX_STATEMENT_DAYS = 366


@dataclass(frozen=True)
class ConfiguredAccount:
    id: str
    bank: BankAdapter
    number: str
    name: str
    bank_code: str
    currency: str

    def party(self) -> AccountParty:
        return AccountParty(self.name, self.number, self.bank_code)


def configured_accounts(cipher: FieldCipher, upstreams: UpstreamSet) -> Iterator[ConfiguredAccount]:
    for name in upstreams.names("bank"):
        bank = upstreams.bank(name)
        assert bank is not None
        for entry in bank.config.options.get("accounts", ()):
            number = str(entry["account"]).replace(" ", "")
            yield ConfiguredAccount(
                id="acc_" + cipher.blind_index(f"{name}:{number}")[:24],
                bank=bank,
                number=number,
                name=str(entry.get("name", "")),
                bank_code=str(entry.get("bank_code", "")),
                currency=str(entry.get("currency", "CNY")),
            )


def debtor_party(cipher: FieldCipher, upstreams: UpstreamSet, bank: BankAdapter, number: str, field: str) -> AccountParty:
    """The configured account ``number`` of ``bank`` as the paying party, or 422."""
    compact = number.replace(" ", "")
    for account in configured_accounts(cipher, upstreams):
        if account.bank is bank and account.number == compact:
            return account.party()
    raise ProblemError(
        "unknown_debtor_account",
        f"{field}: not an account the gateway may pay from at {bank.name} (see GET /v1/accounts)",
        field=field,
    )


class StatementService:
    def __init__(self, engine: AsyncEngine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    def list(self, upstreams: UpstreamSet) -> list[AccountOut]:
        return [
            AccountOut(
                id=a.id,
                bank=a.bank.name,
                name=a.name,
                account_masked=mask_account_number(a.number),
                bank_code=a.bank_code,
                currency=a.currency,
                statements=Capability.STATEMENTS in a.bank.capabilities,
            )
            for a in configured_accounts(self.cipher, upstreams)
        ]

    async def statement(
        self, client: Client, upstreams: UpstreamSet, account_id: str, from_date: dt.date, to_date: dt.date,
        context: CallContext,
    ) -> StatementOut:
        account = next((a for a in configured_accounts(self.cipher, upstreams) if a.id == account_id), None)
        if account is None:
            raise ProblemError("not_found", "no account with this id (see GET /v1/accounts)")
        if to_date < from_date or (to_date - from_date).days >= MAX_STATEMENT_DAYS:
            raise ProblemError(
                "invalid_date_range", f"from must be on or before to, and the range at most {MAX_STATEMENT_DAYS} days"
            )
        bank = account.bank
        if Capability.STATEMENTS not in bank.capabilities or not isinstance(bank, Statements):
            raise ProblemError("capability_unsupported", f"{bank.name} does not provide statements")
        try:
            statement = await bank.statement(account.number, from_date, to_date, context=context)
        except UpstreamNotFound:
            raise ProblemError("not_found", f"{bank.name} does not know this account") from None
        except UpstreamError as exc:
            failure = classify(exc)
            if failure.kind is FailureKind.REJECTED:
                raise ProblemError(
                    "upstream_rejected", f"{bank.name} refused the statement request",
                    upstream={"code": failure.upstream_code, "message": failure.upstream_message},
                ) from None
            raise ProblemError("upstream_unavailable", f"{bank.name} could not be asked: {failure.message}") from None
        references = {e.reference for e in statement.entries if e.reference}
        matched: dict[str, str] = {}
        if references:
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    select(payments.c.reference, payments.c.id).where(
                        payments.c.reference.in_(references), payments.c.client_id == client.id
                    )
                )
                matched = {r.reference: r.id for r in rows}
        entries = [
            StatementEntryOut(
                entry_reference=e.entry_reference,
                booked_on=e.booked_on,
                value_on=e.value_on,
                amount=e.amount,
                currency=e.currency,
                direction=e.direction,
                status=e.status,
                reference=e.reference,
                payment_id=matched.get(e.reference) if e.reference else None,
                counterparty_name_masked=mask_name(e.counterparty_name) if e.counterparty_name else None,
                counterparty_account_masked=(
                    mask_account_number(e.counterparty_account) if e.counterparty_account else None
                ),
                remittance=e.remittance,
                bank_transaction_code=e.bank_transaction_code,
            )
            for e in statement.entries
        ]
        reconciled = sum(1 for e in entries if e.payment_id)
        return StatementOut(
            account_id=account.id,
            bank=bank.name,
            currency=statement.currency,
            from_date=statement.from_date,
            to_date=statement.to_date,
            opening_balance=statement.opening_balance,
            closing_balance=statement.closing_balance,
            entries=entries,
            reconciled=reconciled,
            unreconciled=len(entries) - reconciled,
        )
