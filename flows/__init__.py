"""The operations brain, with no Telegram import; one package per capability.

``engine`` (flows, steps, runner, playbook), ``community`` (partners, circles, invites,
onboarding, handover, roles, funnel), ``segments`` (matrix rules and recompute), ``growth``
(gifts, referrals, campaigns, win-back, circle posts), ``service`` (maintenance, bookings,
telematics), ``delivery`` (outbox planning and rules), ``reports`` (workbooks and exports).
Cross-cutting: ``errors`` and ``templating``; ``library/`` holds the flow files.
"""
