"""One answer for a button that must do nothing (issue 11, item 3).

Telegram does not check that callback data came from a button the bot really sent: a modified
client can press "buttons" with any data. Every callback handler checks that the pressing user
is the one the step belongs to and that the step is the current one; when not, it calls
:func:`refuse`: a neutral "this button is no longer active", nothing changed. A press that
cannot come from a real button (an owner id that is not the presser's, someone else's booking)
is also written to the audit log as ``forged_callback``.
"""

from __future__ import annotations

from aiogram.types import CallbackQuery
from sqlmodel import Session

from flows.templating import Renderer
from storage.audit import AuditKind, record_audit
from storage.clock import utcnow


async def refuse(
    callback: CallbackQuery,
    renderer: Renderer,
    locale: str | None,
    *,
    session: Session | None = None,
    why: str = "",
) -> None:
    """Answer neutrally; with ``session`` and ``why`` the press is audited as forged."""
    if session is not None and why:
        user = callback.from_user.id
        record_audit(
            session,
            AuditKind.forged_callback,
            actor=f"user:{user}",
            at=utcnow(),
            callback_data=(callback.data or "")[:64],
            why=why,
        )
    await callback.answer(renderer.render("common/stale_button", locale, no_signature=True))
