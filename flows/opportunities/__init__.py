"""Business opportunities for commercial owners (issue 14): the article's 商机撮合.

Owns the demand side (``demand``: accounts of shippers and fleets, their staff and one-time
codes), commercial vehicles as capacity (``capacity``: class, payload, base place with an H3
cell, working radius, availability), places (``places``: "城市/区" text → adcode and
coordinates, offline with cpca; ``geo``: H3 disks and distances), tasks and their state machine
with a transition log (``tasks``), matching in waves with ranking and the atomic first
acceptance (``matching``), completion, ratings both ways and partner attribution
(``ratings``), and the reports (``reports``).

Public face: the services in those modules take a Session and plain values and never commit
(the caller owns the unit of work); pushes go through ``flows.delivery.outbox``; the scheduler
entry point is ``matching.waves_job``. Tables are in ``storage.opportunity_models``.
"""

from flows.opportunities import flow_hooks as _flow_hooks

_flow_hooks.install()
