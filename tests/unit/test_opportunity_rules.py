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


@pytest.mark.parametrize(
    ("text", "cities"),
    [("朝阳区", {"北京市朝阳区", "长春市朝阳区"}), ("鼓楼区", {"南京市鼓楼区", "开封市鼓楼区"})],
)
def test_a_district_of_several_cities_named_alone_is_refused_with_the_cities(text: str, cities: set[str]) -> None:
    with pytest.raises(places.UnknownPlaceError, match="several cities") as refused:
        places.resolve(text)
    assert refused.value.key == "place_ambiguous" and cities <= set(refused.value.params["choices"])
    from flows.opportunities.errors import reason_context
    from flows.templating import Renderer

    reply = Renderer().render("opportunities/bad_input", "zh", **reason_context(refused.value))
    assert "北京市朝阳区" in reply or "南京市鼓楼区" in reply
    assert "请连城市一起写" in reply


def test_a_district_with_its_city_resolves_and_is_described_in_full() -> None:
    assert places.resolve("北京市朝阳区").adcode == "110105"
    assert places.resolve("北京/朝阳区").adcode == "110105"
    assert places.resolve("长春/朝阳区").adcode == "220104"
    assert places.resolve("南京/鼓楼区").adcode == "320106"
    assert places.resolve("开封 鼓楼区").adcode == "410204"
    assert places.resolve("天河区").adcode == "440106"  # one city has it: no question
    assert places.describe("440106") == "广东省 广州市 天河区"
    assert places.describe("110105") == "北京市 朝阳区"
    assert places.resolve("广州/天河区").name == "广东省 广州市 天河区"


def test_posted_and_vehicle_set_replies_echo_the_resolved_place() -> None:
    from flows.opportunities import matching
    from flows.templating import Renderer
    from storage.opportunity_models import Capacity, Task

    r = Renderer()
    task = Task(
        id=7,
        demand_id=1,
        pickup_text="北京市朝阳区",
        pickup_adcode="110105",
        pickup_lat=39.9,
        pickup_lon=116.4,
        pickup_h3="x",
        dropoff_text="长春/朝阳区",
        dropoff_adcode="220104",
        dropoff_lat=43.8,
        dropoff_lon=125.3,
        window_start=NOW + timedelta(days=1),
        window_end=NOW + timedelta(days=1, hours=4),
        vehicle_class="van",
        payload_t=1.0,
        state="open",
    )
    posted = r.render("opportunities/posted", "zh", task=matching.task_view(task))
    assert "北京市 朝阳区" in posted and "吉林省 长春市 朝阳区" in posted
    cap = Capacity(
        owner_id=1, vehicle_class="van", payload_t=1.0, base_text="南京/鼓楼区", base_adcode="320106", radius_km=50
    )
    saved = r.render("opportunities/vehicle_set", "en", cap=capacity.view(cap))
    assert "江苏省 南京市 鼓楼区" in saved


def test_every_message_key_is_said_in_every_locale() -> None:
    from flows.opportunities.errors import MESSAGES, InvalidValueError, reason_context
    from flows.templating import LOCALES, Renderer

    r = Renderer()
    for key, names in MESSAGES.items():
        values = {n: (["北京市朝阳区", "长春市朝阳区"] if n == "choices" else "7") for n in names}
        exc = InvalidValueError("ENGLISH FALLBACK", key=key, **values)
        for loc in LOCALES:
            text = r.render("opportunities/bad_input", loc, **reason_context(exc), no_signature=True)
            assert "ENGLISH FALLBACK" not in text and len(text) > 4, (key, loc, text)
    with pytest.raises(ValueError, match="takes"):
        InvalidValueError("x", key="window_too_far")  # a key without its values is a bug


def test_validation_replies_are_in_the_readers_language() -> None:
    from flows.opportunities.errors import reason_context
    from flows.templating import Renderer

    r = Renderer()
    with pytest.raises(InvalidInputError) as heavy:
        tasks.check_load("light_truck", 60, 0)
    zh = r.render("opportunities/bad_input", "zh", **reason_context(heavy.value))
    assert "60 吨超出了轻卡的载重（最多 10 吨）" in zh and "carries" not in zh and "light_truck" not in zh
    en = r.render("opportunities/bad_input", "en", **reason_context(heavy.value))
    assert "more than a light truck carries" in en
    for bad in (
        lambda: tasks.check_window(NOW - timedelta(days=2), NOW - timedelta(days=1), NOW),
        lambda: tasks.parse_price("lots"),
        lambda: capacity.parse_class("rocket"),
        lambda: capacity.parse_until("someday", NOW, "Asia/Shanghai"),
        lambda: places.resolve("火星/某区"),
    ):
        with pytest.raises(InvalidInputError) as refused:
            bad()
        text = r.render("opportunities/bad_input", "zh", **reason_context(refused.value), no_signature=True)
        assert text != f"⚠️ {refused.value}" and any("\u4e00" <= ch <= "\u9fff" for ch in text.replace("火星/某区", ""))


def test_vehicle_details_name_the_class_in_words() -> None:
    from flows.templating import Renderer

    text = Renderer().render("flows/commercial_vehicle_details", "zh", answer="vehicle.tipper")
    assert text.startswith("好的：自卸车。") and "/vehicle tipper 3t" in text


def test_a_negative_payload_is_refused() -> None:
    for text in ("-5t", "- 5 吨", "3t -2m3"):
        with pytest.raises(InvalidInputError, match="negative"):
            capacity.parse_payload(text)


def test_busy_until_and_available_parsing() -> None:
    tz = "Asia/Shanghai"  # NOW is 10:00 there
    assert capacity.parse_until("18:00", NOW, tz) == NOW + timedelta(hours=8)
    assert capacity.parse_until("until 09:00", NOW, tz) == NOW + timedelta(hours=23)  # tomorrow morning
    assert capacity.parse_until("3d", NOW, tz) == NOW + timedelta(days=3)
    assert capacity.parse_until("12h", NOW, tz) == NOW + timedelta(hours=12)
    assert capacity.parse_until("2天", NOW, tz) == NOW + timedelta(days=2)
    assert capacity.parse_until("2026-12-05", NOW, tz) == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    assert capacity.parse_until("2026-12-05 18:00", NOW, tz) == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    for bad in ("", "tomorrow", "25:99", "-3d"):
        with pytest.raises(InvalidInputError):
            capacity.parse_until(bad, NOW, tz)
