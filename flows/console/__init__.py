"""The web console's rules (issue 15): who may sign in (one-time links, sessions, the Mini
App's signed ``initData``), and the figures its pages show. No web framework in here: the
aiohttp application in ``bot/web`` calls these with a Session and plain values.

Public face:

* ``access``: ``issue_link``, ``redeem_link``, ``current``, ``sessions_of``, ``revoke``,
  ``locked_out`` / ``record_failure``, ``SignInError``
* ``init_data``: ``validate`` (a Mini App's ``initData``), ``make_init_data`` (tests, the demo)
* ``figures``: ``Scope`` and one function per page (``overview``, ``matrix``, ``cell_owners``,
  ``movement``, ``flow_funnels``, ``campaign_page``, ``delivery_health``, ``churn``, ``gifts``,
  ``referrals``, ``timeline``, ``search_owners``)
* ``supply_figures``: offers, merchants, settlement and tasks (``offer_page``,
  ``merchant_page``, ``settlement``, ``task_page``, ``task_in_scope``), the Mini App's
  ``merchant_home`` and ``demand_home``
* ``counts``: ``refresh`` / ``refresh_job`` (the overview's and matrix's counts, set-based)
"""
