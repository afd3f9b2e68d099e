"""link reminders, certificate expiry notices, retention purge marks

``verification_token.reminded_at`` (one reminder per link), the table
``certificate_notice`` (one expiry notice per certificate and threshold) and
``application.purged_at`` (when the retention purge removed its raw mail).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:40:00
"""
import sqlalchemy as sa
from alembic import op

import intake.store.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('certificate_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('threshold_days', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('queued_at', intake.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['issued_certificate.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('certificate_id', 'threshold_days', name='uq_certificate_notice')
    )
    with op.batch_alter_table('certificate_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_notice_certificate_id'), ['certificate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificate_notice_queued_at'), ['queued_at'], unique=False)
    with op.batch_alter_table('verification_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminded_at', intake.store.models.UtcDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', intake.store.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
    with op.batch_alter_table('verification_token', schema=None) as batch_op:
        batch_op.drop_column('reminded_at')
    with op.batch_alter_table('certificate_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_notice_queued_at'))
        batch_op.drop_index(batch_op.f('ix_certificate_notice_certificate_id'))
    op.drop_table('certificate_notice')
