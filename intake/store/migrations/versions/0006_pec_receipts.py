"""outbox.pec_receipts and pec_status: PEC receipts recorded on the reply they are about

A PEC receipt (X-Ricevuta) that names one of pasts' replies by
X-Riferimento-Message-ID is proof of delivery (or of failure); SPEC section 2
wants it kept on that reply and shown by `pasts show`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('pec_receipts', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('pec_status', sa.String(length=20), nullable=True))
        batch.create_index('ix_outbox_pec_status', ['pec_status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_index('ix_outbox_pec_status')
        batch.drop_column('pec_status')
        batch.drop_column('pec_receipts')
