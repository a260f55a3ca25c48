#!/usr/bin/python3
"""Expected values for runtime/beat/crontab's tests, computed by Celery.

Run with Debian's python3-celery 5.2.6 (and its pytz):

    /usr/bin/python3 runtime/beat/crontab/testdata/crontab_cases.py \
        > runtime/beat/crontab/testdata/crontab_cases.json

It writes three tables:

parse
    One field spec in one of crontab()'s five arguments (the others '*'):
    the set Celery expands it to, or Celery's error.

next
    (expression, time zone, after) -> the instant Celery beat runs the entry
    next when its last run was `after`. Beat polls is_due(last_run_at) with
    a moving now (app.now(): aware, in the app time zone); the entry runs at
    the first instant at which is_due says due. This script finds that
    instant by polling (jumps of at most an hour, then a minute-by-minute
    scan of the last jump), so DST is handled exactly as Celery's
    remaining()/ffwd arithmetic handles it. "celery" is Celery 5.2.6's
    answer, "fixed" the answer with Celery 5.3's fix of _delta_to_next's
    is_before_last_run (5.2.6 compares the candidate day's midnight *UTC*
    with last_run_at, so west of UTC a run late in the evening makes it skip
    to the next month); taskgen implements "fixed". null means Celery
    raises RuntimeError (an impossible date such as 30 February).

dst
    Runs of successive fire times (each run's last_run_at is the previous
    fire instant) across the 2023 spring-forward and fall-back transitions
    of America/New_York and Europe/Berlin.
"""

import json
import random
import sys
from datetime import date, datetime, timedelta

import pytz
from celery import Celery
from celery.schedules import crontab
from celery.utils.collections import AttributeDict
from celery.utils.time import ffwd
from bisect import bisect, bisect_left

UTC = pytz.utc
FIELDS = ('minute', 'hour', 'day_of_month', 'month_of_year', 'day_of_week')


class crontab_fixed(crontab):
    """5.2.6's crontab with the is_before_last_run fix of Celery 5.3."""

    def _delta_to_next(self, last_run_at, next_hour, next_minute):
        datedata = AttributeDict(year=last_run_at.year)
        days_of_month = sorted(self.day_of_month)
        months_of_year = sorted(self.month_of_year)

        def day_out_of_range(year, month, day):
            try:
                datetime(year=year, month=month, day=day)
            except ValueError:
                return True
            return False

        def is_before_last_run(year, month, day):
            # 5.3 compares the candidate slot in the local zone; every
            # candidate here is on another day than last_run_at, so the
            # dates decide.
            return date(year, month, day) < last_run_at.date()

        def roll_over():
            for _ in range(2000):
                flag = (datedata.dom == len(days_of_month) or
                        day_out_of_range(datedata.year,
                                         months_of_year[datedata.moy],
                                         days_of_month[datedata.dom]) or
                        (is_before_last_run(datedata.year,
                                            months_of_year[datedata.moy],
                                            days_of_month[datedata.dom])))
                if flag:
                    datedata.dom = 0
                    datedata.moy += 1
                    if datedata.moy == len(months_of_year):
                        datedata.moy = 0
                        datedata.year += 1
                else:
                    break
            else:
                raise RuntimeError('unable to rollover')

        if last_run_at.month in self.month_of_year:
            datedata.dom = bisect(days_of_month, last_run_at.day)
            datedata.moy = bisect_left(months_of_year, last_run_at.month)
        else:
            datedata.dom = 0
            datedata.moy = bisect(months_of_year, last_run_at.month)
            if datedata.moy == len(months_of_year):
                datedata.moy = 0
        roll_over()
        while 1:
            th = datetime(year=datedata.year,
                          month=months_of_year[datedata.moy],
                          day=days_of_month[datedata.dom])
            if th.isoweekday() % 7 in self.day_of_week:
                break
            datedata.dom += 1
            roll_over()
        return ffwd(year=datedata.year, month=months_of_year[datedata.moy],
                    day=days_of_month[datedata.dom], hour=next_hour,
                    minute=next_minute, second=0, microsecond=0)


_apps = {}


def app_for(tzname):
    if tzname not in _apps:
        app = Celery(set_as_current=False)
        app.conf.timezone = tzname
        app.conf.enable_utc = True
        _apps[tzname] = app
    return _apps[tzname]


def make(cls, expr, tzname):
    mi, h, dom, moy, dow = expr.split()
    return cls(minute=mi, hour=h, day_of_month=dom, month_of_year=moy,
               day_of_week=dow, app=app_for(tzname))


class Horizon(Exception):
    """No fire time found within the horizon (a script bug, not Celery's)."""


def fire_after(c, tz, last_utc, horizon_days=100 * 366):
    """First instant (UTC) > last_utc at which c.is_due(last) says due."""
    last = last_utc.astimezone(tz)
    now = [last]
    c.nowfun = lambda: now[0]

    def due(t_utc):
        now[0] = t_utc.astimezone(tz)  # as app.now() builds it
        return c.is_due(last)

    prev = last_utc
    t = last_utc
    limit = last_utc + timedelta(days=horizon_days)
    while True:
        d, rem = due(t)
        if d and t > last_utc:
            break
        prev = t
        # The due instant is at least rem - (an offset change) away, so a
        # jump of rem less two days skips none; near it, jump at most an
        # hour, then scan that hour.
        if rem > 3 * 86400:
            t = t + timedelta(seconds=rem - 2 * 86400)
        else:
            t = t + timedelta(seconds=min(max(rem, 1e-6), 3600))
        if t > limit:
            raise Horizon(c, last_utc)
    # The first due instant is on a whole UTC minute (slots, transitions and
    # midnights are); scan the last jump minute by minute.
    s = prev.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while s < t:
        if due(s)[0]:
            return s
        s += timedelta(minutes=1)
    return t


def fmt(t_utc, tz):
    if t_utc is None:
        return None
    return t_utc.astimezone(tz).isoformat()


def next_case(expr, tzname, after_utc):
    tz = pytz.timezone(tzname)
    out = {'expr': expr, 'tz': tzname, 'after': fmt(after_utc, tz)}
    for key, cls in (('celery', crontab), ('fixed', crontab_fixed)):
        try:
            out[key] = fmt(fire_after(make(cls, expr, tzname), tz, after_utc), tz)
        except Horizon:
            raise
        except RuntimeError:  # Celery's 'unable to rollover'
            out[key] = None
    return out


PARSE_SPECS = {
    'minute': ['*', '0', '59', '60', '-1', '*/15', '*/0', '*/', '*/100',
               '1-10', '55-5', '55-5/3', '2-9/5', '2-10/5', '2-11/5,3',
               '2-4/3,*/5,0-21/4', '1-9/2', '1,2,3,4', '0,15,30,45', '1,,2',
               '', '0-100', '61-0', '05', 'mon', 'x', '5/2', '*x', '1-2-3',
               '1-5/2/3', '+5', '1-', '-5-10', '*-5', '1-*', '5-5', '1-5/',
               '1-5/0', '1-5/x', '1,2,', ',1'],
    'hour': ['*', '23', '24', '*/3', '0,8-17/2', '22-2', '22-2/2', '0-30',
             '12-0', 'sun-sat'],
    'day_of_month': ['*', '1', '31', '0', '32', '0-10', '31,32', '*/5',
                     '*/3', '2,4,6', '2-30/2', '1-7,15-21', '25-5', 'sun',
                     'mon'],
    'month_of_year': ['*', '1', '12', '0', '13', '0-5', '12,13', '*/2',
                      '*/3', '2-12/2', '11-2', 'jan', 'mon'],
    'day_of_week': ['*', '0', '6', '7', '12', '5', 'fri', 'FRI', 'Friday',
                    'tuesday,sunday,fri', 'mon-fri', 'fri-mon', '*/2',
                    'fooday-barday', '1,4,foo', 'mo', 'tues', 'thurs',
                    'monkey', 'sun-sat', 'sat-sun', 'mon-fry', '0-6/2',
                    'sun,7'],
}


def parse_cases():
    out = []
    for field, specs in PARSE_SPECS.items():
        for spec in specs:
            case = {'field': field, 'spec': spec}
            try:
                c = crontab(**{field: spec}, app=app_for('UTC'))
                case['values'] = sorted(getattr(c, field))
            except Exception as exc:  # ParseException, ValueError
                case['error'] = f'{type(exc).__name__}: {exc}'
            out.append(case)
    return out


def utc(*a):
    return datetime(*a, tzinfo=UTC)


# Celery's own t/unit/app/test_schedules.py next-occurrence cases (UTC app,
# naive times as UTC), as (expr, after).
CELERY_TEST_CASES = [
    ('* * * * *', utc(2010, 9, 11, 14, 30, 15)),
    ('* * * * *', utc(2010, 9, 11, 14, 59, 15)),
    ('5,42 * * * *', utc(2010, 9, 11, 14, 30, 15)),
    ('5,10,15 * * * *', utc(2010, 9, 11, 14, 30, 15)),
    ('5,42 12,17 * * *', utc(2010, 9, 11, 14, 30, 15)),
    ('5,42 12 * * *', utc(2010, 9, 11, 14, 30, 15)),
    ('30 14 * * sat', utc(2010, 9, 11, 14, 30, 15)),
    ('5,42 * * * mon-fri', utc(2010, 9, 11, 14, 30, 15)),
    ('30 14 18 * *', utc(2010, 9, 11, 14, 30, 15)),
    ('5,42 * 29 * *', utc(2010, 1, 22, 14, 30, 15)),
    ('30 14 18 * mon', utc(2010, 1, 18, 14, 30, 15)),
    ('5,42 * 29 * sat', utc(2010, 1, 29, 0, 5, 15)),
    ('5,42 * 18 * mon', utc(2010, 1, 11, 0, 5, 15)),
    ('5,42 * 18 * mon', utc(2010, 1, 10, 0, 5, 15)),
    ('30 14 29 * *', utc(2012, 1, 29, 14, 30, 15)),
    ('30 14 29 * *', utc(2010, 1, 29, 14, 30, 15)),
    ('30 14 29 1 fri', utc(2010, 1, 22, 14, 30, 15)),
    ('5,42 * 29 1,4,7 wed,thu', utc(2010, 1, 29, 14, 30, 15)),
    ('30 14 29 1-10 fri', utc(2010, 1, 29, 14, 30, 15)),
    ('5,42 * 29 2-10 fri', utc(2010, 1, 29, 14, 30, 15)),
    ('5,42 * 18 2-10 mon', utc(2010, 1, 11, 0, 5, 15)),
    ('5,42 * 29 2-4 mon', utc(2010, 1, 29, 0, 5, 15)),
    ('5,42 * 29 2-4 mon', utc(2010, 2, 28, 0, 5, 15)),
    ('5,42 * 29 2-10 fri,sat', utc(2010, 1, 28, 14, 30, 15)),
    ('* * 31 4 *', utc(2010, 1, 28, 14, 30, 15)),
    ('30 14 29 2 *', utc(2012, 2, 29, 14, 30)),
    ('0 9 * * *', datetime(2017, 10, 28, 7, 0, tzinfo=UTC)),  # Paris, below
    ('30 7 8-14 * thu', utc(2010, 4, 8, 7, 30)),
    ('* 22 26,27,28 2 *', utc(2013, 7, 4, 10, 0)),
    ('30 7 8-14 3 thu', utc(2009, 3, 12, 7, 30)),
]

ZONES = ['UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Kolkata',
         'America/Los_Angeles', 'Australia/Lord_Howe', 'Pacific/Honolulu']


def rand_field(rng, lo, hi, names=None):
    def num():
        v = rng.randint(lo, hi)
        if names and rng.random() < 0.3:
            return names[v]
        return str(v)

    def part():
        r = rng.random()
        if r < 0.35:
            return num()
        if r < 0.6:
            return f'{num()}-{num()}'
        if r < 0.8:
            return f'*/{rng.randint(1, hi - lo + 2)}'
        return f'{num()}-{num()}/{rng.randint(1, 5)}'

    if rng.random() < 0.3:
        return '*'
    return ','.join(part() for _ in range(rng.choice([1, 1, 1, 2, 3])))


DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']


def rand_expr(rng):
    return ' '.join([
        rand_field(rng, 0, 59),
        rand_field(rng, 0, 23),
        rand_field(rng, 1, 31) if rng.random() < 0.5 else '*',
        rand_field(rng, 1, 12) if rng.random() < 0.4 else '*',
        rand_field(rng, 0, 6, DAYS) if rng.random() < 0.5 else '*',
    ])


def next_cases():
    out = []
    for expr, after in CELERY_TEST_CASES:
        out.append(next_case(expr, 'UTC', after))
    out.append(next_case('0 9 * * *', 'Europe/Paris',
                         utc(2017, 10, 28, 7, 0)))
    out.append(next_case('0 9 * * *', 'Europe/Paris',
                         utc(2017, 3, 25, 8, 0)))
    # The 5.2.6 midnight-UTC bug, on purpose.
    out.append(next_case('0 22 1-31 * *', 'America/New_York',
                         utc(2023, 6, 11, 2, 0)))
    out.append(next_case('0 22 * * *', 'America/New_York',
                         utc(2023, 6, 11, 2, 0)))
    rng = random.Random(20230312)
    n = 0
    while n < 1000:
        expr = rand_expr(rng)
        try:
            make(crontab, expr, 'UTC')
        except Exception:
            continue
        tzname = rng.choice(ZONES)
        # Around the 2023 transitions half of the time.
        if rng.random() < 0.5:
            base = rng.choice([utc(2023, 3, 12, 6), utc(2023, 11, 5, 5),
                               utc(2023, 3, 26, 0), utc(2023, 10, 29, 0),
                               utc(2023, 4, 1, 15), utc(2023, 9, 30, 15)])
            after = base + timedelta(seconds=rng.randint(-3 * 86400, 86400))
        else:
            after = utc(2020, 1, 1) + timedelta(
                seconds=rng.randint(0, 6 * 365 * 86400))
        if rng.random() < 0.5:
            after = after.replace(second=0)
        out.append(next_case(expr, tzname, after))
        n += 1
    return out


DST_RUNS = [
    # (name, tz, expr, start local naive, runs); an ambiguous start is its
    # first (DST) occurrence unless the name ends in _2nd.
    ('ny_spring_daily_0230', 'America/New_York', '30 2 * * *',
     datetime(2023, 3, 10, 2, 30), 4),
    ('ny_spring_hourly', 'America/New_York', '0 * * * *',
     datetime(2023, 3, 12, 0, 0), 4),
    ('ny_spring_quarter', 'America/New_York', '*/15 * * * *',
     datetime(2023, 3, 12, 1, 30), 5),
    ('ny_fall_daily_0230', 'America/New_York', '30 2 * * *',
     datetime(2023, 11, 4, 2, 30), 3),
    ('ny_fall_daily_0130', 'America/New_York', '30 1 * * *',
     datetime(2023, 11, 4, 1, 30), 3),
    ('ny_fall_hourly', 'America/New_York', '0 * * * *',
     datetime(2023, 11, 5, 0, 0), 4),
    ('ny_fall_quarter', 'America/New_York', '*/15 * * * *',
     datetime(2023, 11, 5, 1, 30), 4),
    ('ny_fall_quarter_2nd', 'America/New_York', '*/15 * * * *',
     datetime(2023, 11, 5, 1, 30), 4),
    ('ny_fall_daily_0130_2nd', 'America/New_York', '30 1 * * *',
     datetime(2023, 11, 5, 1, 10), 2),
    ('berlin_spring_daily_0230', 'Europe/Berlin', '30 2 * * *',
     datetime(2023, 3, 25, 2, 30), 3),
    ('berlin_spring_hourly', 'Europe/Berlin', '0 * * * *',
     datetime(2023, 3, 26, 0, 0), 4),
    ('berlin_fall_daily_0230', 'Europe/Berlin', '30 2 * * *',
     datetime(2023, 10, 28, 2, 30), 3),
    ('berlin_fall_hourly', 'Europe/Berlin', '0 * * * *',
     datetime(2023, 10, 29, 1, 0), 4),
    ('berlin_fall_quarter', 'Europe/Berlin', '*/15 * * * *',
     datetime(2023, 10, 29, 2, 30), 4),
]


def dst_runs():
    out = []
    for name, tzname, expr, start, n in DST_RUNS:
        tz = pytz.timezone(tzname)
        first = tz.localize(start, is_dst=not name.endswith('_2nd'))
        t = first.astimezone(UTC)
        runs = []
        for _ in range(n):
            t = fire_after(make(crontab, expr, tzname), tz, t)
            runs.append(fmt(t, tz))
        out.append({'name': name, 'tz': tzname, 'expr': expr,
                    'start': fmt(first.astimezone(UTC), tz),
                    'runs': runs})
    return out


def main():
    json.dump({'celery': '5.2.6', 'parse': parse_cases(),
               'next': next_cases(), 'dst': dst_runs()},
              sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
