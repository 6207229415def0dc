"""An offer's text in two languages: ``body`` is the default (zh) text, ``body_en`` the English
one; owners read their locale's text and the other when theirs is empty. The CLI and the
import take the English text."""

from __future__ import annotations

from pathlib import Path

from merchant_seed import seed_merchant, seed_owners
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.merchants import offers
from flows.merchants.offer_import import import_offers
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import make_engine, session_scope
from storage.merchant_models import Offer


def test_owners_read_the_text_of_their_locale_or_the_other(engine) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        seed_merchant(session, title="Both", body="免费精洗一次", body_en="One free detail wash")
        only_zh = offers.create_offer(
            session,
            merchant_code="M001",
            title="Only zh",
            body="仅中文",
            value_kind="free_item",
            item="x",
            valid_days=9,
        )
        only_en = offers.create_offer(
            session,
            merchant_code="M001",
            title="Only en",
            body_en="English only",
            value_kind="free_item",
            item="y",
            valid_days=9,
        )
        for offer in (only_zh, only_en):
            offers.set_status(session, offer.id, "live")
        owner = seed_owners(session, 1)[0]
        profile = offers.owner_profile(session, owner, now)

        def texts(locale: str | None) -> dict[str, str]:
            return {o.title: o.body for o in offers.rank_offers(session, profile, now, locale=locale)}

        assert texts("en") == {"Both": "One free detail wash", "Only zh": "仅中文", "Only en": "English only"}
        assert texts("zh") == {"Both": "免费精洗一次", "Only zh": "仅中文", "Only en": "English only"}
        assert texts(None)["Both"] == "免费精洗一次"  # no locale given: the stored default text
        renderer = Renderer(default_locale="zh")
        english = renderer.render("offers/list", "en", offers=offers.rank_offers(session, profile, now, locale="en"))
        chinese = renderer.render("offers/list", "zh", offers=offers.rank_offers(session, profile, now, locale="zh"))
    assert "One free detail wash" in english and "免费精洗一次" not in english
    assert "免费精洗一次" in chinese and "One free detail wash" not in chinese


def test_the_cli_and_the_import_take_the_english_text(cli_env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli, ["merchants", "add", "--code", "M1", "--name", "Shine", "--kind", "car_life", "--category", "car_wash"]
    )
    assert added.exit_code == 0, added.output
    result = runner.invoke(
        cli,
        [
            "offers",
            "add",
            "--merchant",
            "M1",
            "--title",
            "Wash",
            "--text",
            "洗车",
            "--text-en",
            "A wash",
            "--value",
            "free_item",
            "--item",
            "wash",
            "--valid-days",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    long = runner.invoke(
        cli,
        [
            "offers",
            "add",
            "--merchant",
            "M1",
            "--title",
            "Long",
            "--text-en",
            "x" * 1501,
            "--value",
            "free_item",
            "--item",
            "wash",
            "--valid-days",
            "30",
        ],
    )
    assert long.exit_code != 0 and "English text is longer than 1500" in long.output
    path = tmp_path / "offers.csv"
    path.write_text(
        "merchant,key,title,说明,英文说明,value,item,valid_days\nM1,polish,抛光,抛光一次,One polish,free_item,polish,30\n",
        encoding="utf-8",
    )
    engine = make_engine(cli_env)
    summary = import_offers(engine, path, timezone="Asia/Shanghai", now=utcnow(), rejects_path=tmp_path / "r.csv")
    assert (summary.imported, summary.rejected) == (1, 0)
    with Session(engine) as s:
        rows = {o.title: (o.body, o.body_en) for o in s.exec(select(Offer).order_by(col(Offer.id))).all()}
    engine.dispose()
    assert rows == {"Wash": ("洗车", "A wash"), "抛光": ("抛光一次", "One polish")}
