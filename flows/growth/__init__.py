"""What moves owners up the matrix: gifts and gift types, referrals, partner campaigns, win-back, circle posts.

Public face: ``gifts.grant`` / ``redeem``, ``referrals``, ``campaigns``, ``winback.on_answer`` / ``churn_reasons``, ``circle_posts``.
Importing the package registers growth's flow words with the engine (``flow_hooks``:
``grant_gift``, the ``gift.expires_at`` date trigger, win-back's answers).
"""

from flows.growth import flow_hooks as _flow_hooks

_flow_hooks.install()
