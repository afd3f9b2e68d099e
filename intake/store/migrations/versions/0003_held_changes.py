"""held changes (unauthenticated resubmissions), confirm links, Message-ID key

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 10:40:00
"""
import secrets

import sqlalchemy as sa
from alembic import op

import intake.store.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('received_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('proposed', sa.JSON(), nullable=False),
    sa.Column('csr_der', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', intake.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', intake.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['application.id'], ),
    sa.ForeignKeyConstraint(['received_id'], ['received_message.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('held_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_change_application_id'), ['application_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_held_change_status'), ['status'], unique=False)

    with op.batch_alter_table('verification_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), server_default='verify', nullable=False))
        batch_op.add_column(sa.Column('change_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_verification_token_change_id'), ['change_id'], unique=False)
        batch_op.create_foreign_key('fk_verification_token_change_id', 'held_change', ['change_id'], ['id'])

    # The secret pasts Message-IDs derive from, made once and shared by every
    # worker of this database (intake.service.message_id_secret).
    key_value = sa.table('key_value', sa.column('key', sa.String), sa.column('value', sa.Text))
    op.bulk_insert(key_value, [{'key': 'message-id-key', 'value': secrets.token_hex(32)}])


def downgrade() -> None:
    op.execute("DELETE FROM key_value WHERE key = 'message-id-key'")
    with op.batch_alter_table('verification_token', schema=None) as batch_op:
        batch_op.drop_constraint('fk_verification_token_change_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_verification_token_change_id'))
        batch_op.drop_column('change_id')
        batch_op.drop_column('purpose')
    with op.batch_alter_table('held_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_change_status'))
        batch_op.drop_index(batch_op.f('ix_held_change_application_id'))
    op.drop_table('held_change')
