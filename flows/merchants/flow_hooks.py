"""Merchants' words in the flow language, registered with the engine (``flows.engine.registry``).

* ``offer: {category: tyres, limit: 3}`` sends the owner the best offers of a category they may
  claim (``rank_offers``), through the outbox, with the same claim buttons as ``/offers``
  (``claim_callback``: the bot's ``ClaimOffer`` data), and records them as shown. Nothing is
  sent when there is no offer for the owner (the why-log says so).
* ``grant_coupon: {offer: first_wash, template: offers/coupon_granted}`` gives the owner a coupon
  of the offer with that key, once per run (the claim's request id is the run and the step, so
  a second pass finds the same coupon), free of points and within the offer's targeting, stock
  and per-owner limit; the coupon is kept in the run's context (templates see ``coupon``) and
  the optional template is sent when one was granted.
* the date trigger ``coupon.expires_at`` enters owners whose unredeemed coupon expires within
  the offset; a send from such a run is about that coupon (topic ``coupon_reminder``), which
  redeeming it cancels (``redemption.redeem`` → ``cancel_topic``).

Offer keys live in the database, so ``flows check`` verifies their shape only; categories are
checked against ``offers.CATEGORIES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.outbox import Push, enqueue
from flows.engine import registry
from flows.merchants import coupons, offers, shown
from storage.merchant_models import Coupon, Merchant, Offer
from storage.models import MessageClass

REMINDER_TOPIC = coupons.REMINDER_TOPIC
CLAIM_PREFIX = "ofc"  # bot.routers.offers.ClaimOffer's prefix: fields owner_id, offer_id
DEFAULT_OFFER_TEMPLATE = "offers/flow_offers"
CLAIM_LABEL = "offers/claim_button"


class OfferStep(BaseModel):
    """``offer: {category: tyres, limit: 3, template: offers/flow_offers}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    category: str
    limit: int = Field(default=3, ge=1, le=5)
    template: str = DEFAULT_OFFER_TEMPLATE


class GrantCouponStep(BaseModel):
    """``grant_coupon: {offer: first_wash, template: offers/coupon_granted}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    offer: str
    template: str | None = None


def claim_callback(owner_id: int, offer_id: int) -> str:
    """The callback data of a claim button, as ``ClaimOffer(owner_id=…, offer_id=…).pack()``."""
    return f"{CLAIM_PREFIX}:{owner_id}:{offer_id}"


def coupon_context(coupon: Any) -> dict[str, Any]:
    """A coupon as a run keeps it (JSON-ready) and templates see it."""
    offer = getattr(coupon, "offer", None)
    expires = coupon.expires_at
    return {
        "id": coupon.id,
        "code": coupon.code,
        "title": getattr(offer, "title", "") if offer is not None else "",
        "merchant": getattr(offer, "merchant_name", "") if offer is not None else "",
        "expires_at": expires.isoformat() if expires else None,
        "expires_on": f"{expires:%Y-%m-%d}" if expires else "",
    }


def _topic(run: Any) -> dict[str, str]:
    from flows.engine.flow_steps import PUSH_TOPIC

    return {"topic": PUSH_TOPIC, "subject": f"run:{run.id}"}


def _send(
    ctx: Any,
    run: Any,
    spec: Any,
    owner: Any,
    step: Any,
    text: str,
    buttons: list[list[dict[str, Any]]] | None,
    message_class: MessageClass,
    topic: Mapping[str, str],
) -> None:
    from flows.engine.flow_steps import step_dedupe_key

    created = enqueue(
        ctx.session,
        Push(
            dedupe_key=step_dedupe_key(spec.key, run.id, step.id),
            chat_id=owner.telegram_user_id,
            text=text,
            message_class=message_class,
            owner_id=owner.id,
            partner_id=owner.partner_id,
            buttons=buttons or None,
            topic=topic.get("topic"),
            subject=topic.get("subject"),
        ),
        getattr(ctx, "policy", None),
    )
    ctx.log(run, owner.id, spec.key, "queued", None if created else "already in the outbox", step.id)


def _render(ctx: registry.StepContext, run: Any, owner: Any, template: str, **values: Any) -> str:
    renderer = ctx.renderer
    assert renderer is not None  # the runner that advances flows always has one
    locale = renderer.locale_for(owner.locale)
    return renderer.render(
        template,
        locale,
        owner_name=owner.name or "",
        flow=run.flow_key,
        **registry.render_vars(run.context, locale),
        **values,
    )


def _offer(ctx: registry.StepContext, run: Any, spec: Any, owner: Any, step: Any, action: OfferStep) -> None:
    if owner.telegram_user_id is None:
        ctx.log(run, owner.id, spec.key, "skipped", "no Telegram account", step.id)
        return
    renderer = ctx.renderer
    assert renderer is not None  # the runner that advances flows always has one
    locale = renderer.locale_for(owner.locale)
    profile = offers.owner_profile(ctx.session, owner.id, ctx.now)
    ranked = offers.rank_offers(
        ctx.session, profile, ctx.now, limit=action.limit, category=action.category, locale=locale
    )
    if not ranked:
        ctx.log(run, owner.id, spec.key, "skipped", f"no {action.category} offer for this owner", step.id)
        return
    text = _render(ctx, run, owner, action.template, offers=ranked, category=action.category)
    buttons = [
        [
            {
                "text": f"{renderer.render(CLAIM_LABEL, locale, n=i, no_signature=True).strip()} · {o.title[:30]}",
                "callback_data": claim_callback(owner.id, o.id),
            }
        ]
        for i, o in enumerate(ranked, 1)
    ]
    _send(ctx, run, spec, owner, step, text, buttons, MessageClass.marketing, _topic(run))
    shown.record_shown(ctx.session, owner.id, [o.id for o in ranked], ctx.now, via="flow")
    return


def _grant(ctx: registry.StepContext, run: Any, spec: Any, owner: Any, step: Any, action: GrantCouponStep) -> None:
    offer = offers.offer_by_key(ctx.session, action.offer)
    if offer is None:
        ctx.log(run, owner.id, spec.key, "skipped", f"no offer with key {action.offer!r}", step.id)
        return
    try:
        with ctx.session.begin_nested():
            coupon = coupons.claim(
                ctx.session, offer.id or 0, owner.id, ctx.now, request_id=f"flow:{run.id}:{step.id}", pay_points=False
            )
    except coupons.ClaimError as exc:
        ctx.log(run, owner.id, spec.key, "skipped", f"coupon {action.offer}: {exc.reason}", step.id)
        return
    run.context = {**run.context, "coupon": coupon_context(coupon)}
    ctx.log(run, owner.id, spec.key, "granted", f"coupon {action.offer} {coupon.code}", step.id)
    if action.template and owner.telegram_user_id is not None:
        text = _render(ctx, run, owner, action.template)
        _send(ctx, run, spec, owner, step, text, None, MessageClass.transactional, _topic(run))
    return


def _key_shape(value: str) -> str | None:
    try:
        offers.clean_key(value)
    except Exception as exc:  # noqa: BLE001 - the message is the point
        return str(exc)
    return None


def _check_offer(action: OfferStep, ctx: registry.CheckContext) -> Iterator[tuple[str, str]]:
    if action.category not in offers.CATEGORIES:
        yield "category", f"unknown offer category {action.category!r}; known: {', '.join(sorted(offers.CATEGORIES))}"
    for template in (action.template, CLAIM_LABEL):
        missing = [loc for loc in ctx.locales if not ctx.template_exists(template, loc)]
        if missing:
            yield "template", f"template {template!r} is missing for {', '.join(missing)}"


def _check_grant(action: GrantCouponStep, ctx: registry.CheckContext) -> Iterator[tuple[str, str]]:
    problem = _key_shape(action.offer)
    if problem:
        yield "offer", problem
    if action.template:
        missing = [loc for loc in ctx.locales if not ctx.template_exists(action.template, loc)]
        if missing:
            yield "template", f"template {action.template!r} is missing for {', '.join(missing)}"


def expiring(session: Session, ahead: timedelta, now: datetime) -> list[tuple[Coupon, Offer, Merchant]]:
    """Unredeemed coupons that expire within ``ahead`` (and have not yet expired)."""
    return list(
        session.execute(
            select(Coupon, Offer, Merchant)
            .join(Offer, col(Offer.id) == col(Coupon.offer_id))
            .join(Merchant, col(Merchant.id) == col(Offer.merchant_id))
            .where(col(Coupon.status) == "claimed", col(Coupon.expires_at) > now, col(Coupon.expires_at) <= now + ahead)
            .order_by(col(Coupon.expires_at), col(Coupon.id))
        ).all()
    )


def _expiring(session: Session, ahead: timedelta, now: datetime, _trigger: Any) -> Iterator[registry.DateEntry]:
    for coupon, offer, merchant in expiring(session, ahead, now):
        context = {
            "id": coupon.id,
            "code": coupon.code,
            "title": offer.title,
            "merchant": merchant.name,
            "expires_at": coupon.expires_at.isoformat(),
            "expires_on": f"{coupon.expires_at:%Y-%m-%d}",
        }
        yield registry.DateEntry(coupon.owner_id, f"date:coupon:{coupon.code}", {"coupon": context})


def _coupon_topic(context: Mapping[str, Any]) -> dict[str, str] | None:
    coupon_id = (context.get("coupon") or {}).get("id")
    return {"topic": REMINDER_TOPIC, "subject": f"coupon:{coupon_id}"} if coupon_id else None


def _coupon_vars(context: Mapping[str, Any], _locale: str) -> dict[str, Any]:
    return {"coupon": context.get("coupon")}


def install() -> None:
    """Register merchants' words (idempotent: a second call replaces the same entries)."""
    registry.register_step("offer", OfferStep, _offer, _check_offer)
    registry.register_step("grant_coupon", GrantCouponStep, _grant, _check_grant)
    registry.register_date_source("coupon.expires_at", _expiring, _coupon_topic)
    registry.register_render_vars(_coupon_vars)
    registry.register_vocabulary("offer_category", offers.CATEGORIES)
