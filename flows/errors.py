"""Errors that ``flows`` raise for things a person can fix (a typo, a stale code).

The edges (CLI, bot) catch ``AutoCircleError`` and show its message as one line, so every
message here is written for the operator or partner who will read it, not for a developer.
"""

from __future__ import annotations


class AutoCircleError(Exception):
    """Base of every expected, user-facing error."""


class InvalidInputError(AutoCircleError):
    """A value given on the command line or in a file is not acceptable."""


class InvalidFileError(InvalidInputError):
    """A whole import file is unusable (unreadable, wrong format, required columns missing)."""


class NotFoundError(AutoCircleError):
    """Something named by the user does not exist."""


class PartnerNotFoundError(NotFoundError):
    """No partner has the given advisor code."""


class DuplicateError(AutoCircleError):
    """Creating something that already exists."""


class DuplicatePartnerError(DuplicateError):
    """A partner with this advisor code already exists."""


class RegistrationError(AutoCircleError):
    """A partner's one-time registration code could not be redeemed."""


class UnknownRegistrationCodeError(RegistrationError):
    """The code is mistyped, was never issued, or was replaced by a newer one."""


class ExpiredRegistrationCodeError(RegistrationError):
    """The code was issued but its validity window has passed; ask for a new one."""


class UsedRegistrationCodeError(RegistrationError):
    """The code was already redeemed; codes are one-time."""


class TelegramAccountInUseError(RegistrationError):
    """The Telegram account is already linked to another partner."""


class LockedRegistrationError(RegistrationError):
    """Too many wrong codes from this Telegram account lately: refused without a lookup."""
