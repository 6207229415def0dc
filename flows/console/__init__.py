"""The web console's rules (issue 15): who may sign in (one-time links, sessions, the Mini
App's signed ``initData``), and the figures its pages show. No web framework in here: the
aiohttp application in ``bot/web`` calls these with a Session and plain values."""
