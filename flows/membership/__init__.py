"""Membership (会员): points for meaningful actions, kept as a ledger, and levels.

Owns the points ledger (one line per change, each with a reason and a unique key, so nothing
is awarded twice), the balance that never goes below zero, the expiry rule (points earned in a
year expire at the end of the next), the levels 银卡/金卡/黑卡 (silver/gold/black) with
thresholds from settings, and the level-up notice through the outbox. Points come from the
event log by a job that keeps its own cursor, so no other module changes to award them.

Public functions:

* ``points``: ``award``, ``spend``, ``take_back``, ``balance_of``, ``lines_of``, ``expire_due``,
  ``summary``, ``PointsPolicy``, ``level_for``, ``check_level``
* ``awards``: ``award_from_events``, ``points_job``
"""

from flows.membership import flow_hooks as _flow_hooks

_flow_hooks.install()
