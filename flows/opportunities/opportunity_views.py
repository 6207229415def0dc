"""Small read models the bot shows (who to call about a task)."""

from __future__ import annotations

from sqlmodel import Session

from storage.opportunity_models import DemandAccount, Task


def accepted_contact(session: Session, task: Task) -> tuple[str, str]:
    """The demand side's company and contact phone, for the owner who got the task."""
    account = session.get(DemandAccount, task.demand_id)
    return (account.company, account.contact_phone) if account else ("", "")
