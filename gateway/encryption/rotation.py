"""Key rotation: add a data key, then re-encrypt every encrypted column with it.

The new keyring (old keys kept) is saved before any row changes, so every value
stays decryptable throughout. Running gateways pick the new key up from the keyring
file the first time they meet a value encrypted under it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..config import Settings
from ..store import (
    clients,
    contribution_runs,
    create_engine,
    declaration_lines,
    enrolments,
    idempotency_records,
    payments,
    reimbursements,
    terminations,
    transfers,
    upgrade,
    webhook_endpoints,
)
from .keyring import Keyring
from .pii import KEYRING_REFRESH_SECONDS, FieldCipher

__all__ = ["ENCRYPTED_COLUMNS", "RotationReport", "reencrypt_all", "rotate_keys"]

#: (table, encrypted column, associated-data name) for every ciphertext the gateway stores.
ENCRYPTED_COLUMNS: tuple[tuple[sa.Table, str, str], ...] = (
    (clients, "jwe_key_enc", "clients.jwe_key"),
    (idempotency_records, "response_body_enc", "idempotency_records.response_body"),
    (enrolments, "id_number_enc", "enrolments.id_number"),
    (enrolments, "name_enc", "enrolments.name"),
    (declaration_lines, "id_number_enc", "declaration_lines.id_number"),
    (declaration_lines, "name_enc", "declaration_lines.name"),
    (transfers, "id_number_enc", "transfers.id_number"),
    (transfers, "name_enc", "transfers.name"),
    (terminations, "id_number_enc", "terminations.id_number"),
    (terminations, "name_enc", "terminations.name"),
    (payments, "debtor_enc", "payments.debtor"),
    (payments, "creditor_enc", "payments.creditor"),
    (payments, "remittance_enc", "payments.remittance"),
    (contribution_runs, "debtor_account_enc", "contribution_runs.debtor_account"),
    (contribution_runs, "payee_enc", "contribution_runs.payee"),
    (contribution_runs, "lines_enc", "contribution_runs.lines"),
    (reimbursements, "id_number_enc", "reimbursements.id_number"),
    (reimbursements, "name_enc", "reimbursements.name"),
    (reimbursements, "payout_enc", "reimbursements.payout"),
    (reimbursements, "debtor_account_enc", "reimbursements.debtor_account"),
    (webhook_endpoints, "secret_enc", "webhook_endpoints.secret"),
)


@dataclass
class RotationReport:
    new_kid: str
    reencrypted: dict[str, int] = field(default_factory=dict)


async def reencrypt_all(engine: sa.ext.asyncio.AsyncEngine, cipher: FieldCipher, batch: int = 500) -> dict[str, int]:
    counts: dict[str, int] = {}
    prefix = cipher.keyring.active + "."
    for table, column_name, context in ENCRYPTED_COLUMNS:
        column = table.c[column_name]
        pk = list(table.primary_key.columns)
        done = 0
        while True:
            async with engine.begin() as conn:
                rows = (
                    await conn.execute(
                        sa.select(*pk, column).where(column.is_not(None), ~column.startswith(prefix)).limit(batch)
                    )
                ).all()
                for row in rows:
                    plaintext = cipher.decrypt_bytes(row[-1], context)
                    where = sa.and_(*(c == row[i] for i, c in enumerate(pk)))
                    await conn.execute(
                        table.update().where(where, column == row[-1]).values({column_name: cipher.encrypt(plaintext, context)})
                    )
            done += len(rows)
            if len(rows) < batch:
                break
        counts[f"{table.name}.{column_name}"] = done
    return counts


async def rotate_keys(settings: Settings, *, settle_seconds: float = KEYRING_REFRESH_SECONDS + 1) -> RotationReport:
    """Add a key, give running gateways ``settle_seconds`` to switch to it, then
    re-encrypt everything not yet under it (so nothing written meanwhile is missed)."""
    keyring = Keyring.load(settings.keyring_file)
    new_kid = keyring.add_data_key()
    keyring.save()
    await asyncio.sleep(settle_seconds)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        counts = await reencrypt_all(engine, FieldCipher(keyring))
    finally:
        await engine.dispose()
    return RotationReport(new_kid, counts)
