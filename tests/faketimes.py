"""The dates and hours at which ``make test`` runs the calendar-dependent tests again.

A test must pass on any day at any hour: one that reads the real clock somewhere it should use
the injected one passes the day it is written and fails later. So after the whole suite,
``tests/run.sh`` runs the tests that handle calendars (store, consent, campaign, the dialer, the
service, the demo) once more under libfaketime, at one of these instants, chosen by the run:

- ``saturday-night``: the next Saturday, 23:30 in Paris (the French window is closed);
- ``christmas``: the next 25 December, 10:00 in Paris (a public holiday on a weekday hour);
- ``dst``: the next day the clocks change in Paris, 03:30 (a 23- or 25-hour day);
- ``next-year``: one year from now, at this hour.

``python tests/faketimes.py [NAME|random|all]`` prints ``NAME<TAB>INSTANT`` lines, the instant
in this machine's local time as ``faketime -f "@INSTANT"`` reads it. Stdlib only.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def _dst_day(after: datetime) -> datetime:
    """03:30 in Paris on the first day after ``after`` whose UTC offset differs from the day
    before's (the last Sunday of March or of October)."""
    day = after.astimezone(PARIS).date() + timedelta(days=1)
    while True:
        before = datetime(day.year, day.month, day.day, 0, 0, tzinfo=PARIS).utcoffset()
        end = datetime(day.year, day.month, day.day, 23, 0, tzinfo=PARIS).utcoffset()
        if before != end:
            return datetime(day.year, day.month, day.day, 3, 30, tzinfo=PARIS)
        day += timedelta(days=1)


def instants(now: datetime) -> dict[str, datetime]:
    """Each named instant, after ``now`` (an aware datetime)."""
    paris = now.astimezone(PARIS)
    saturday = paris.date() + timedelta(days=(5 - paris.weekday()) % 7 or 7)
    christmas_year = paris.year if (paris.month, paris.day) < (12, 25) else paris.year + 1
    try:
        next_year = now.replace(year=now.year + 1)
    except ValueError:  # 29 February
        next_year = now.replace(year=now.year + 1, day=28)
    return {
        "saturday-night": datetime(
            saturday.year, saturday.month, saturday.day, 23, 30, tzinfo=PARIS
        ),
        "christmas": datetime(christmas_year, 12, 25, 10, 0, tzinfo=PARIS),
        "dst": _dst_day(now),
        "next-year": next_year,
    }


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "random"
    table = instants(datetime.now(UTC))
    if which == "random":
        names = [random.choice(sorted(table))]
    elif which == "all":
        names = sorted(table)
    elif which in table:
        names = [which]
    else:
        known = ", ".join(sorted(table))
        print(f"faketimes: unknown instant {which!r} ({known}, random, all)", file=sys.stderr)
        return 2
    for name in names:
        local = table[name].astimezone()  # faketime reads "@..." in the machine's time zone
        print(f"{name}\t{local:%Y-%m-%d %H:%M:%S}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
