"""The operations brain, with no Telegram import; one package per capability.

``engine`` (flows, steps, runner, playbook, the registry capabilities fill), ``community``
(partners, circles, invites, onboarding, handover, roles, funnel), ``segments`` (matrix rules
and recompute), ``growth`` (gifts, referrals, campaigns, win-back, circle posts), ``service``
(maintenance, bookings, telematics), ``delivery`` (outbox planning and rules), ``reports``
(workbooks and exports), ``membership`` (points ledger and levels), ``merchants`` (merchants,
offers, coupons, redemption, commission), ``opportunities`` (commercial tasks, capacity,
matching in waves), ``console`` (the web console's sign-in and figures). Cross-cutting:
``errors``, ``pictures`` (the CJK font for PNGs) and ``templating``; ``library/`` holds the
flow files.

The engine knows no capability: each package that gives flows a word of its own registers it
with ``flows.engine.registry`` when imported. ``capabilities()`` (run on import) imports them
all, so a flow file is read and run with every word known, whichever module was imported first.
"""

from __future__ import annotations

import importlib

# the packages that register flow words with the engine, in registration order
CAPABILITIES_WITH_FLOW_WORDS = ("flows.growth", "flows.merchants", "flows.membership", "flows.opportunities")


def capabilities() -> None:
    """Import every capability package that registers flow words (idempotent, cheap)."""
    for name in CAPABILITIES_WITH_FLOW_WORDS:
        importlib.import_module(name)


capabilities()
