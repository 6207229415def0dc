"""Ranking, places, H3 disks and the parsing rules of opportunities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.errors import InvalidInputError
from flows.opportunities import capacity, geo, places, ranking, tasks
from flows.opportunities.ranking import Candidate

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def test_places_resolve_city_district_and_refuse_unknown_or_province() -> None:
    p = places.resolve("广州/天河区")
    assert p.adcode == "440106" and 23 < p.lat < 23.3 and 113.2 < p.lon < 113.5
    assert places.resolve("上海").adcode == "310000"
    with pytest.raises(places.UnknownPlaceError, match="unknown place"):
        places.resolve("火星/某区")
    with pytest.raises(places.UnknownPlaceError, match="province"):
        places.resolve("广东")


def test_disk_covers_the_radius() -> None:
    gz, fs = places.resolve("广州/天河区"), places.resolve("佛山/南海区")
    d = geo.distance_km(gz.lat, gz.lon, fs.lat, fs.lon)
    assert 10 < d < 50
    assert geo.cell_of(fs.lat, fs.lon) in geo.disk(geo.cell_of(gz.lat, gz.lon), d)
    bj = places.resolve("北京/朝阳区")
    assert geo.distance_km(gz.lat, gz.lon, bj.lat, bj.lon) > 1000


def test_one_rating_does_not_dominate_the_prior() -> None:
    assert ranking.bayes_rating(0, 0) == ranking.PRIOR_MEAN
    assert 4.0 < ranking.bayes_rating(5, 1) < 4.3
    assert ranking.bayes_rating(20 * 5, 20) > 4.7


def test_rank_prefers_near_well_rated_reliable_and_rested() -> None:
    base = dict(capacity_id=1, reach_km=100)
    near = Candidate(owner_id=1, distance_km=5, **base)
    far = Candidate(owner_id=2, distance_km=80, **base)
    assert [c.owner_id for _, c in ranking.rank([far, near], NOW)] == [1, 2]
    good = Candidate(owner_id=3, distance_km=20, rating_sum=50, rating_count=10, **base)
    bad = Candidate(owner_id=4, distance_km=20, rating_sum=10, rating_count=10, **base)
    assert ranking.score(good, NOW) > ranking.score(bad, NOW)
    flaky = Candidate(owner_id=5, distance_km=20, offers=20, accepted=1, **base)
    assert ranking.score(flaky, NOW) < ranking.score(Candidate(owner_id=6, distance_km=20, **base), NOW)
    busy = Candidate(owner_id=7, distance_km=20, last_task_at=NOW - timedelta(hours=1), **base)
    assert ranking.score(busy, NOW) < ranking.score(Candidate(owner_id=8, distance_km=20, **base), NOW)


def test_class_from_model_and_payload_rules() -> None:
    assert capacity.class_of_model("江淮 冷藏车") is capacity.VehicleClass.refrigerated
    assert capacity.class_of_model("福田 自卸车") is capacity.VehicleClass.tipper
    assert capacity.class_of_model("宋PLUS DM-i") is None
    assert capacity.parse_payload("3t 16m3") == (3.0, 16.0)
    with pytest.raises(InvalidInputError, match="more than a van"):
        tasks.check_load("van", 12, 0)
    with pytest.raises(InvalidInputError):
        capacity.parse_payload("heavy")


def test_window_and_price_parsing() -> None:
    start, end = tasks.parse_window("2026-12-05 09:00-18:00", NOW, "Asia/Shanghai")
    assert (start.hour, end.hour) == (1, 10)
    with pytest.raises(InvalidInputError, match="past"):
        tasks.check_window(NOW - timedelta(days=2), NOW - timedelta(days=1), NOW)
    with pytest.raises(InvalidInputError):
        tasks.parse_window("next week", NOW, "Asia/Shanghai")
    assert tasks.parse_price("报价") is None and tasks.parse_price("¥1,200") == 120000


def test_state_machine_has_no_way_back() -> None:
    assert tasks.sources_of(tasks.S.assigned) == ["open", "offered"]
    assert not tasks.ALLOWED[tasks.S.done]


def test_opportunity_settings_make_the_match_policy(monkeypatch) -> None:
    from datetime import timedelta

    from bot.config import Settings

    monkeypatch.setenv("AUTOCIRCLE_OPPORTUNITIES__WAVE_SIZE", "3")
    monkeypatch.setenv("AUTOCIRCLE_OPPORTUNITIES__WAVE_RADII_KM", "[200, 40]")
    monkeypatch.setenv("AUTOCIRCLE_OPPORTUNITIES__WAVE_TIMEOUT_MINUTES", "5")
    policy = Settings().opportunities.policy([7])
    assert (policy.per_wave, policy.wave_radii_km, policy.wave_timeout, policy.operator_ids) == (
        3,
        (40.0, 200.0),
        timedelta(minutes=5),
        (7,),
    )
    assert policy.radius(1) == 40.0 and policy.radius(9) == 200.0
