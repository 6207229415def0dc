"""Errors of the opportunities package: each message is for the person who will read it."""

from __future__ import annotations

from flows.errors import AutoCircleError, InvalidInputError, NotFoundError, RegistrationError


class DemandNotFoundError(NotFoundError):
    """No demand-side account has this code."""


class DuplicateDemandError(AutoCircleError):
    """A demand-side account with this code exists."""


class StaffCodeError(RegistrationError):
    """A demand-side staff code could not be redeemed (unknown, used, expired, locked)."""


class TaskNotFoundError(NotFoundError):
    """No such task, or not one the caller is a party to."""


class TaskStateError(InvalidInputError):
    """The task is not in a state that allows this (e.g. already taken)."""


class AlreadyTakenError(TaskStateError):
    """Another owner accepted first."""


class OfferNotCurrentError(NotFoundError):
    """The offer is not the presser's, or no longer open."""


class RatingError(InvalidInputError):
    """A rating that is not allowed (not a party, not done, already rated, bad stars)."""
