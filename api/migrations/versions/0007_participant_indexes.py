"""Transfers indexed by sending and receiving participant, for their listings.

Revision ID: 0007_participant_indexes
Revises: 0006_notify
Create Date: 2026-11-26 00:12:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_participant_indexes"
down_revision: str | Sequence[str] | None = "0006_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transfers_debit_participant", ["debit_participant_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_transfers_credit_participant", ["credit_participant_id", "seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_credit_participant")
        batch_op.drop_index("ix_transfers_debit_participant")
