"""outbox bound columns, ledger identity

The per-recipient bound counts per mailbox and per domain and holds answers
over it (``waiting``) instead of dropping them; the ledger's unique identity
makes the duplicate check part of the claim.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import intake.store.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bound_mailbox', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('bound_domain', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('released_at', intake.store.models.UtcDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_bound_mailbox'), ['bound_mailbox'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_bound_domain'), ['bound_domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_released_at'), ['released_at'], unique=False)
    with op.batch_alter_table('received_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity', sa.String(length=64), nullable=True))
        batch_op.create_index('uq_received_identity', ['identity'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('received_message', schema=None) as batch_op:
        batch_op.drop_index('uq_received_identity')
        batch_op.drop_column('identity')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_released_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_bound_domain'))
        batch_op.drop_index(batch_op.f('ix_outbox_bound_mailbox'))
        batch_op.drop_column('released_at')
        batch_op.drop_column('bound_domain')
        batch_op.drop_column('bound_mailbox')
