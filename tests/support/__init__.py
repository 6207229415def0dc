"""Helpers the tests share: the bot harness on the sandbox and the flows handle."""
