"""Sandbox settings: who the bot is and how strict the simulated Telegram limits are."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SandboxConfig:
    """Knobs of the local Bot API stand-in.

    The limits mirror Telegram's published flood limits (about 30 messages per second
    overall, about one per second per private chat with a short burst, 20 per minute per
    group) so that a bot which survives the sandbox also survives production.
    """

    bot_rate_per_s: float = 30.0
    private_rate_per_s: float = 1.0
    private_burst: int = 3
    group_per_min: int = 20
    enforce_limits: bool = True
    bot_username: str = "autocircle_bot"
    bot_id: int = 7000000001
    bot_first_name: str = "AutoCircle"
    # Telegram's privacy mode off: the bot sees every group message, not only commands.
    can_read_all_group_messages: bool = True
    # Real Telegram demands HTTPS webhooks; local demos need plain HTTP.
    allow_http_webhook: bool = True
    # Test knob: methods this server does not have, like a self-hosted or older Bot API server
    # (e.g. ``{"setMyDescription"}``). ``"json"`` answers Telegram's 404 error object; ``"html"``
    # a plain web server's 404 page, which is not JSON at all.
    unsupported_methods: frozenset[str] = field(default_factory=frozenset)
    unsupported_answer: str = "json"
