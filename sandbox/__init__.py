"""A local stand-in for the Telegram Bot API, for end-to-end tests and demos.

The real aiogram client talks to it over HTTP
(``TelegramAPIServer.from_base(sandbox.base_url)``) while tests act as people through the
Python control methods or the ``/control`` HTTP API.
"""

from .config import SandboxConfig
from .errors import ApiError, SandboxError
from .server import Sandbox, run_sandbox

__all__ = ["ApiError", "Sandbox", "SandboxConfig", "SandboxError", "run_sandbox"]
