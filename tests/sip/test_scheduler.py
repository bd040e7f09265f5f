"""Call-level timers and the early filter for strangers."""

from __future__ import annotations

from gateway.sip.routing import SourceFilter
from gateway.sip.scheduler import Scheduler


def test_timers_fire_in_deadline_order_once() -> None:
    scheduler = Scheduler()
    fired: list[str] = []
    scheduler.schedule(2.0, lambda now: fired.append(f"b@{now}"))
    scheduler.schedule(1.0, lambda now: fired.append(f"a@{now}"))
    assert scheduler.get_timer() == 1.0
    scheduler.fire(1.5)
    assert fired == ["a@1.5"]
    scheduler.fire(3.0)
    scheduler.fire(4.0)
    assert fired == ["a@1.5", "b@3.0"]
    assert scheduler.get_timer() is None and len(scheduler) == 0


def test_cancelled_timer_never_fires_and_releases_its_callback() -> None:
    scheduler = Scheduler()
    fired: list[float] = []
    handle = scheduler.schedule(1.0, fired.append)
    scheduler.cancel(handle)
    scheduler.cancel(handle)  # twice is harmless
    assert len(scheduler) == 0 and scheduler.get_timer() is None
    scheduler.fire(5.0)
    assert fired == []


def test_many_cancelled_timers_do_not_pile_up() -> None:
    scheduler = Scheduler()
    for _ in range(10_000):
        scheduler.cancel(scheduler.schedule(1800.0, lambda now: None))
    assert len(scheduler._heap) <= 64 + 4  # rebuilt as stale entries dominate


def test_source_filter_per_address_and_all_together() -> None:
    f = SourceFilter(rate=5)
    assert [f.allow("192.0.2.1", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert f.allow("192.0.2.1", 0.2)  # one token back after 1/rate seconds
    # A spoofed flood: every packet from a new address; the global bucket (10 x rate) holds.
    allowed = sum(f.allow(f"10.0.{i // 256}.{i % 256}", 1.0) for i in range(1000))
    assert allowed <= 50
