"""Errors of the opportunities package: each message is for the person who will read it.

A person in the bot reads it in their own language: an ``OpportunityError`` carries a message
key and its values (``key``, ``params``; the keys and the values each needs are ``MESSAGES``),
which ``templates/<locale>/opportunities/_reason.j2`` says per locale; ``str()`` stays the
English sentence for the CLI, import reports and logs. ``reason_context`` is what a reply
template needs to say any error (a keyless one falls back to its English text).
"""

from __future__ import annotations

from typing import Any

from flows.errors import AutoCircleError, InvalidInputError, NotFoundError, RegistrationError

#: message key → the names of the values its text needs
MESSAGES: dict[str, tuple[str, ...]] = {
    # places
    "place_empty": (),
    "place_too_long": ("limit",),
    "place_unknown": ("text",),
    "place_province": ("text",),
    "place_no_coordinates": ("text",),
    "place_ambiguous": ("text", "choices"),
    # task windows, loads, prices, notes
    "window_order": (),
    "window_past": (),
    "window_too_far": ("days",),
    "window_too_long": ("days",),
    "window_format": (),
    "window_bad_time": ("value",),
    "load_missing": (),
    "notes_too_long": ("limit",),
    "price_format": (),
    "price_range": (),
    # vehicles and availability
    "class_unknown": ("text",),
    "payload_format": ("text",),
    "payload_negative": (),
    "payload_too_heavy": ("tonnes", "cls", "limit"),
    "volume_too_big": ("volume", "limit"),
    "commercial_only": (),
    "radius_range": ("limit",),
    "until_passed": (),
    "until_format": (),
    "vehicle_first": (),
    # tasks and offers
    "task_not_found": ("task_id",),
    "task_state": ("task_id", "state"),
    "already_taken": (),
    "overlapping": ("other",),
    "offer_not_current": (),
    # demand-side staff codes
    "code_locked": (),
    "code_not_found": (),
    "code_used": (),
    "code_expired": (),
    "code_account_in_use": (),
}


class OpportunityError(AutoCircleError):
    """An error with a message key (``MESSAGES``) and the values its text needs."""

    def __init__(self, message: str, key: str = "", **params: Any) -> None:
        super().__init__(message)
        if key:
            expected = MESSAGES.get(key)
            if expected is None or set(expected) != set(params):
                raise ValueError(f"message key {key!r} takes {expected!r}, got {sorted(params)!r}")
        self.key = key
        self.params = params


def reason_context(exc: BaseException) -> dict[str, Any]:
    """The values ``opportunities/bad_input`` (and the other replies that include
    ``_reason.j2``) need to say ``exc`` in the reader's language."""
    return {
        "reason": str(exc),
        "key": getattr(exc, "key", "") or "",
        "p": dict(getattr(exc, "params", None) or {}),
    }


class InvalidValueError(OpportunityError, InvalidInputError):
    """A value typed in the bot, on the command line or in a file is not acceptable."""


class DemandNotFoundError(NotFoundError):
    """No demand-side account has this code."""


class DuplicateDemandError(AutoCircleError):
    """A demand-side account with this code exists."""


class StaffCodeError(OpportunityError, RegistrationError):
    """A demand-side staff code could not be redeemed (unknown, used, expired, locked)."""


class TaskNotFoundError(OpportunityError, NotFoundError):
    """No such task, or not one the caller is a party to."""


class TaskStateError(OpportunityError, InvalidInputError):
    """The task is not in a state that allows this (e.g. already taken)."""


class AlreadyTakenError(TaskStateError):
    """Another owner accepted first."""


class OverlappingTaskError(TaskStateError):
    """The owner already has an assigned or started task whose window overlaps this one."""


class OfferNotCurrentError(OpportunityError, NotFoundError):
    """The offer is not the presser's, or no longer open."""


class RatingError(InvalidInputError):
    """A rating that is not allowed (not a party, not done, already rated, bad stars)."""
