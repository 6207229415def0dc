"""The demo scenario: the whole product driven on the local sandbox as real people drive it.

``scenario`` starts the sandbox and the bot in one process, imports the sample data and plays
the first day (partners register, owners open their links, verify, onboard and chat);
``days`` then plays simulated days of flows, reminders and service bookings. Public face:
``scenario.run_demo`` / ``scenario.Demo`` and ``DemoOptions``. Only the CLI and tests import it.
"""
