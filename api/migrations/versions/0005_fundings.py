"""Prefunding requests (idempotent by id); entries indexed by transfer for batches.

Revision ID: 0005_fundings
Revises: 0004_events
Create Date: 2026-11-25 22:35:03.765004

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_fundings"
down_revision: str | Sequence[str] | None = "0004_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "settlement_fundings",
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_settlement_fundings_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("participant_id", "client_id", name=op.f("pk_settlement_fundings")),
    )
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index("ix_entries_transfer", ["transfer_seq"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("ix_entries_transfer")
    op.drop_table("settlement_fundings")
