"""a push's topic and subject live on its outbox row; the outbox_topic table goes (issue 17)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

Written by hand. A push's topic (``gift_reminder``, ``campaign:12``) and subject (``gift:7``,
``owner:42``) say what it is about, for suppression at send time. They were rows of their own
(``outbox_topic``, one per push that has a topic), inserted after the outbox rows and matched
to them by dedupe key: for a big campaign a second table's worth of inserts and index
lookups, and a second read for the sender. They become two nullable columns of the outbox row,
written in the same insert and read with it. Nothing queries pushes by topic (cancelling a
topic is a ``delivery_suppression`` row the sender checks), so the columns carry no index.
Existing topic rows are copied before the table is dropped.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('topic', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('subject', sa.String(length=200), nullable=True))
    op.execute(
        'UPDATE outbox SET '
        'topic = (SELECT t.topic FROM outbox_topic t WHERE t.outbox_id = outbox.id), '
        'subject = (SELECT t.subject FROM outbox_topic t WHERE t.outbox_id = outbox.id) '
        'WHERE id IN (SELECT outbox_id FROM outbox_topic)'
    )
    op.drop_index('ix_outbox_topic_topic_subject', table_name='outbox_topic')
    op.drop_table('outbox_topic')


def downgrade() -> None:
    # kept aside first: on SQLite dropping the columns rebuilds the outbox table, and dropping
    # the old one would cascade into an outbox_topic that already references it
    op.execute('CREATE TABLE outbox_topic_keep AS SELECT id, topic, subject FROM outbox WHERE topic IS NOT NULL')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('subject')
        batch.drop_column('topic')
    op.create_table('outbox_topic',
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outbox_id'),
    )
    op.create_index('ix_outbox_topic_topic_subject', 'outbox_topic', ['topic', 'subject'])
    op.execute('INSERT INTO outbox_topic (outbox_id, topic, subject) SELECT id, topic, subject FROM outbox_topic_keep')
    op.drop_table('outbox_topic_keep')
