"""outbox: covering indexes for choosing due rows and counting the bound

The sender chooses its due rows by ``status``, ``next_try_at`` and
``claimed_until``, and no index held them: each batch of 20 scanned the whole
outbox, every reply ever queued and kept (on SQLite, for a column stored after
``raw``, through the reply's overflow page), so a flush of n rows read about
n²/20 rows. The bound's hourly counts filtered ``released_at`` after an index
on the recipient alone. Both are answered from an index now.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:40:00
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_due', 'outbox',
                    ['status', 'next_try_at', 'claimed_until', 'claimed_by'], unique=False)
    op.drop_index('ix_outbox_bound_mailbox', table_name='outbox')
    op.create_index('ix_outbox_bound_mailbox', 'outbox', ['bound_mailbox', 'released_at'],
                    unique=False)
    op.drop_index('ix_outbox_bound_domain', table_name='outbox')
    op.create_index('ix_outbox_bound_domain', 'outbox', ['bound_domain', 'released_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_bound_domain', table_name='outbox')
    op.create_index('ix_outbox_bound_domain', 'outbox', ['bound_domain'], unique=False)
    op.drop_index('ix_outbox_bound_mailbox', table_name='outbox')
    op.create_index('ix_outbox_bound_mailbox', 'outbox', ['bound_mailbox'], unique=False)
    op.drop_index('ix_outbox_due', table_name='outbox')
