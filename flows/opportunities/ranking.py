"""How candidates are ordered: distance, rating with a Bayesian prior, acceptance and
completion history, and time since the last task (work is spread, newcomers get a turn).

Pure functions, so the rules are unit-tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: The prior: every owner starts as if rated ``PRIOR_MEAN`` ``PRIOR_WEIGHT`` times, so one
#: 5-star (or 1-star) rating moves them a little, twenty move them a lot.
PRIOR_MEAN = 4.0
PRIOR_WEIGHT = 5
WEIGHTS = {"distance": 0.40, "rating": 0.25, "acceptance": 0.15, "completion": 0.10, "recency": 0.10}
RECENCY_DAYS = 30


@dataclass(frozen=True)
class Candidate:
    owner_id: int
    capacity_id: int
    distance_km: float
    reach_km: float
    rating_sum: int = 0
    rating_count: int = 0
    offers: int = 0
    accepted: int = 0
    completed: int = 0
    last_task_at: datetime | None = None
    partner_id: int | None = None
    chat_id: int | None = None
    name: str = ""
    locale: str | None = None


def bayes_rating(rating_sum: int, rating_count: int) -> float:
    return (PRIOR_MEAN * PRIOR_WEIGHT + rating_sum) / (PRIOR_WEIGHT + rating_count)


def score(c: Candidate, now: datetime) -> float:
    distance = max(0.0, 1.0 - c.distance_km / c.reach_km) if c.reach_km > 0 else 0.0
    rating = (bayes_rating(c.rating_sum, c.rating_count) - 1.0) / 4.0
    acceptance = (c.accepted + 1) / (c.offers + 2)
    completion = (c.completed + 1) / (c.accepted + 2)
    if c.last_task_at is None:
        recency = 1.0
    else:
        recency = min(max((now - c.last_task_at).total_seconds() / 86400, 0.0), RECENCY_DAYS) / RECENCY_DAYS
    w = WEIGHTS
    return (
        w["distance"] * distance
        + w["rating"] * rating
        + w["acceptance"] * acceptance
        + w["completion"] * completion
        + w["recency"] * recency
    )


def rank(candidates: list[Candidate], now: datetime) -> list[tuple[float, Candidate]]:
    """Best first; ties by distance then owner id (stable, reproducible)."""
    scored = [(score(c, now), c) for c in candidates]
    scored.sort(key=lambda sc: (-sc[0], sc[1].distance_km, sc[1].owner_id))
    return scored
