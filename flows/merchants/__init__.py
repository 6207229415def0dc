"""Merchants: after-sales (车后) and car-life (车生活) providers and the revenue they bring.

Owns the merchants and their staff accounts, offers with targeting and ranking, coupons and
their race-free claim and redemption (with undo), and the partner commission ledger with its
monthly settlement. Services take a Session and plain values and never commit.

Public functions:

* ``directory``: ``add_merchant``, ``list_merchants``, ``find_merchant``, ``import_merchants``,
  ``issue_staff_code``, ``register_staff``, ``staff_of_user``
* ``offers``: ``create_offer``, ``set_status``, ``list_offers``, ``owner_profile``,
  ``eligible``, ``rank_offers``, ``floor_offers``
* ``coupons``: ``claim``, ``coupons_of``, ``qr_png``, ``coupon_link``
* ``redemption``: ``redeem``, ``undo``, ``needs_order_value``
* ``commission``: ``settle_due``, ``settlement``, ``earnings``
"""

from flows.merchants import flow_hooks as _flow_hooks

_flow_hooks.install()
