"""drop job_run: nothing ever wrote or read it

The scheduled jobs keep no "last run" row: each sweep is idempotent and runs
under the database job lock (intake.jobs), so the table stayed empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00
"""
import sqlalchemy as sa
from alembic import op

import intake.store.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('job_run')


def downgrade() -> None:
    op.create_table('job_run',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('last_run', intake.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
