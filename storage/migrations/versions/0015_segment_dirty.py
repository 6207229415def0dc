"""segment dirty queue: owners whose segment inputs changed since the last recompute (issue 17)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

Written by hand. ``segment_dirty`` is a queue of owner ids appended by database triggers
whenever something the segment rules read changes: an owner row is inserted, or one of
stage, online_at, verified_at, familiarity or the counters ``record()`` keeps changes value,
or a vehicle's purchase date (or owner) is added, changed or removed. Triggers, not Python,
so that every writer (``storage.events.record``, the importers, owner edits, onboarding, a bulk
load in SQL, other agents' future code) marks the owner without having to remember to.

A queue table rather than a flag on the owner row: clearing a flag would rewrite every owner
row (and, on PostgreSQL, every owner index: a flag that is indexed rules out HOT updates) in
the first recompute after a bulk load. The incremental recompute
(``storage.segments.recompute`` with ``only_changed``) reads the queue, evaluates those owners
plus the ones whose time-based buckets can have moved (index ranges on ``last_active_at``, the
owner's online moment and ``vehicle.purchase_date``), and deletes exactly the queue rows it
read, in the same transaction.

``segment_run.mode`` (full / incremental) and ``segment_run.thresholds`` (the rules' knobs in
force) tell the next run what the previous one covered: changed thresholds force a full run.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

#: The owner columns the segment rules read (flows.segments.rules / storage.segments).
INPUTS = ('stage', 'online_at', 'verified_at', 'familiarity', 'last_active_at', 'first_action_at',
          'action_count', 'referral_count', 'service_visits')

_SQLITE = [
    ("CREATE TRIGGER tr_owner_segment_insert AFTER INSERT ON owner BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (NEW.id); END"),
    ("CREATE TRIGGER tr_owner_segment_update AFTER UPDATE OF {cols} ON owner WHEN {changed} BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (NEW.id); END"),
    ("CREATE TRIGGER tr_vehicle_segment_insert AFTER INSERT ON vehicle "
    "WHEN NEW.purchase_date IS NOT NULL BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (NEW.owner_id); END"),
    ("CREATE TRIGGER tr_vehicle_segment_update AFTER UPDATE OF purchase_date, owner_id ON vehicle "
    "WHEN OLD.purchase_date IS NOT NEW.purchase_date OR OLD.owner_id IS NOT NEW.owner_id BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (NEW.owner_id); "
    "INSERT INTO segment_dirty (owner_id) SELECT OLD.owner_id WHERE OLD.owner_id IS NOT NEW.owner_id; END"),
    ("CREATE TRIGGER tr_vehicle_segment_delete AFTER DELETE ON vehicle "
    "WHEN OLD.purchase_date IS NOT NULL BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (OLD.owner_id); END"),
]

_PG = [
    ("CREATE FUNCTION segment_mark_owner() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO segment_dirty (owner_id) VALUES (NEW.id); RETURN NULL; END $$"),
    ("CREATE FUNCTION segment_mark_vehicle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP <> 'DELETE' THEN INSERT INTO segment_dirty (owner_id) VALUES (NEW.owner_id); END IF; "
    "IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.owner_id IS DISTINCT FROM NEW.owner_id) THEN "
    "INSERT INTO segment_dirty (owner_id) VALUES (OLD.owner_id); END IF; "
    "RETURN NULL; END $$"),
    ("CREATE TRIGGER tr_owner_segment_insert AFTER INSERT ON owner FOR EACH ROW "
    "EXECUTE FUNCTION segment_mark_owner()"),
    ("CREATE TRIGGER tr_owner_segment_update AFTER UPDATE OF {cols} ON owner FOR EACH ROW WHEN ({changed_pg}) "
    "EXECUTE FUNCTION segment_mark_owner()"),
    ("CREATE TRIGGER tr_vehicle_segment_insert AFTER INSERT ON vehicle FOR EACH ROW "
    "WHEN (NEW.purchase_date IS NOT NULL) EXECUTE FUNCTION segment_mark_vehicle()"),
    ("CREATE TRIGGER tr_vehicle_segment_update AFTER UPDATE ON vehicle FOR EACH ROW "
    "WHEN (OLD.purchase_date IS DISTINCT FROM NEW.purchase_date OR OLD.owner_id IS DISTINCT FROM NEW.owner_id) "
    "EXECUTE FUNCTION segment_mark_vehicle()"),
    ("CREATE TRIGGER tr_vehicle_segment_delete AFTER DELETE ON vehicle FOR EACH ROW "
    "WHEN (OLD.purchase_date IS NOT NULL) EXECUTE FUNCTION segment_mark_vehicle()"),
]


def _statements(dialect: str) -> list[str]:
    if dialect == 'postgresql':
        old = ', '.join(f'OLD.{c}' for c in INPUTS)
        new = ', '.join(f'NEW.{c}' for c in INPUTS)
        changed_pg = f'({old}) IS DISTINCT FROM ({new})'
        return [s.format(cols=', '.join(INPUTS), changed_pg=changed_pg) for s in _PG]
    changed = ' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in INPUTS)
    return [s.format(cols=', '.join(INPUTS), changed=changed) for s in _SQLITE]


def upgrade() -> None:
    op.create_table('segment_dirty',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('segment_run') as batch:
        batch.add_column(sa.Column('mode', sa.String(), nullable=False, server_default='full'))
        batch.add_column(sa.Column('thresholds', sa.String(), nullable=True))
    # Time-based movement: the incremental run selects the owners whose last action, online
    # moment or car purchase date lies between the previous run's cut-off and this run's.
    op.create_index('ix_owner_last_active_at', 'owner', ['last_active_at'])
    op.create_index('ix_owner_online_since', 'owner', [sa.text('coalesce(online_at, verified_at)')])
    op.create_index('ix_vehicle_purchase_date', 'vehicle', ['purchase_date'])
    for statement in _statements(op.get_bind().dialect.name):
        op.execute(statement)
    # Every owner that exists now has not been evaluated under this scheme yet.
    op.execute('INSERT INTO segment_dirty (owner_id) SELECT id FROM owner')


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table in (('tr_owner_segment_insert', 'owner'), ('tr_owner_segment_update', 'owner'),
                        ('tr_vehicle_segment_insert', 'vehicle'), ('tr_vehicle_segment_update', 'vehicle'),
                        ('tr_vehicle_segment_delete', 'vehicle')):
        op.execute(f'DROP TRIGGER IF EXISTS {name}' + (f' ON {table}' if dialect == 'postgresql' else ''))
    if dialect == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS segment_mark_owner()')
        op.execute('DROP FUNCTION IF EXISTS segment_mark_vehicle()')
    op.drop_index('ix_vehicle_purchase_date', table_name='vehicle')
    op.drop_index('ix_owner_online_since', table_name='owner')
    op.drop_index('ix_owner_last_active_at', table_name='owner')
    with op.batch_alter_table('segment_run') as batch:
        batch.drop_column('thresholds')
        batch.drop_column('mode')
    op.drop_table('segment_dirty')
