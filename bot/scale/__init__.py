"""Running several bot processes (issue 16): roles, the scheduler leader, update dedupe, the
shared send limits, health and metrics. See README "Running several processes"."""
