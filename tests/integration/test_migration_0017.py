"""Migration 0017 gives offers an English text beside the default one: existing offers keep
their text and read an empty English text, and it goes back the same way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from storage import migrate
from storage.db import make_engine


def test_offers_gain_an_empty_english_text_and_lose_it_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0016")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO merchant (id, code, name, kind, category, city, district, dealer_codes, contact, active, "
                "created_at) VALUES (1, 'M1', 'Wash', 'car_life', 'car_wash', '', '', '[]', '', 1, '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO offer (id, merchant_id, title, body, category, value_kind, item, valid_days, "
                "stock_claimed, per_owner_limit, targeting, t_dims, t_values, t_specificity, commission_kind, "
                "status, created_at, updated_at) VALUES (1, 1, 'Free wash', '免费洗车一次', 'car_wash', "
                "'free_item', 'wash', 30, 0, 1, '{}', '|', '|', 0, 'none', 'live', '2026-01-01', '2026-01-01')"
            )
        )
    migrate.upgrade(url, "0017")
    with engine.begin() as conn:
        assert tuple(conn.execute(text("SELECT body, body_en FROM offer")).one()) == ("免费洗车一次", "")
        conn.execute(text("UPDATE offer SET body_en = 'One free wash'"))
    command.downgrade(migrate.alembic_config(url), "0016")
    with engine.connect() as conn:
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(offer)"))}
        assert tuple(conn.execute(text("SELECT title, body FROM offer")).one()) == ("Free wash", "免费洗车一次")
    assert "body_en" not in columns and "body" in columns
    engine.dispose()
