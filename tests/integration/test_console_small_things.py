"""Small things of the console (issue 15, item 12): the owner search takes % and _ as the
characters typed, not as LIKE wildcards; the flows page shows "—" where nothing was refused or
skipped, not a count of 0."""

from __future__ import annotations

import re

from console_helpers import client, sign_in
from sqlmodel import Session

from flows.console import figures
from storage.flow_models import FlowRun, FlowRunLog
from storage.models import Owner


def test_the_owner_search_matches_percent_and_underscore_literally(engine) -> None:
    with Session(engine) as session:
        for name, ref in (("50% Wang", "R_1"), ("500 Li", "RX1"), ("Zhao", "R%2")):
            session.add(Owner(name=name, external_id=ref))
        session.commit()
        names = lambda q: sorted(o.name for o in figures.search_owners(session, figures.Scope(), q).items)
        assert names("%") == []  # no one's name starts with "%"
        assert names("50%") == ["50% Wang"]
        assert names("R_") == ["50% Wang"]  # not RX1
        assert names("R%") == ["Zhao"]
        assert names("Wa\\") == [] and names("") == ["50% Wang", "500 Li", "Zhao"]


async def test_the_flows_page_shows_a_dash_where_nothing_was_refused(engine) -> None:
    with Session(engine) as session:
        owner = Owner(name="Wang")
        session.add(owner)
        session.flush()
        run = FlowRun(owner_id=owner.id, flow_key="newcomer", flow_version="1", flow_source="x", status="done")
        session.add(run)
        session.flush()
        for outcome in ("entered", "queued", "done"):
            session.add(FlowRunLog(run_id=run.id, owner_id=owner.id, flow_key="newcomer", outcome=outcome))
        session.commit()
    async with client(engine) as c:
        await sign_in(c, engine)
        page = await (await c.get("/flows?lang=en")).text()
    row = re.search(r'<tr class="flow" data-flow="newcomer">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="small refused">—<', row) and re.search(r'class="small skipped">—<', row)
    assert re.search(r'class="num entered">1<', row)
