"""Celery side of taskgen's side-by-side benchmark (bench/cmd/compare).

Environment: BENCH_BROKER (broker URL), BENCH_QUEUE, BENCH_STATS (a Redis URL
for the counters), BENCH_PREFIX (key prefix of the counters), BENCH_BACKEND
(result backend URL, for the workflow tasks; unset: none).
"""
import itertools
import os
import threading
import time

import redis
from celery import Celery

app = Celery("benchtasks", broker=os.environ["BENCH_BROKER"], backend=os.environ.get("BENCH_BACKEND") or None)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=os.environ.get("BENCH_QUEUE", "celery"),
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
)

_stats = redis.Redis.from_url(os.environ["BENCH_STATS"])
_prefix = os.environ.get("BENCH_PREFIX", "bench")
_count = itertools.count(1)
_done = 0
_reporter = None
_lock = threading.Lock()


def _report():
    # Adds the tasks run by this process to a Redis counter every 2 ms, so
    # the driver can time the drain without a round trip inside each task
    # (prefork: each child reports its own).
    last = 0
    while True:
        done = _done
        if done != last:
            _stats.incrby(_prefix + ":done", done - last)
            last = done
        time.sleep(0.002)


def _ran():
    global _done, _reporter
    _done = next(_count)
    if _reporter is None:
        with _lock:
            if _reporter is None:
                _reporter = threading.Thread(target=_report, daemon=True)
                _reporter.start()


@app.task(name="bench.noop", ignore_result=True)
def noop(ts):
    _ran()


@app.task(name="bench.lat", ignore_result=True)
def lat(ts):
    _stats.rpush(_prefix + ":lat", time.time_ns() - int(ts))
    _ran()


# Workflow tasks (the Workflows rows of docs/BENCHMARKS.md), the same as
# bench/tasks' wfMember, wfSum and wfInc; they store their results.


@app.task(name="bench.wf_member", ignore_result=False)
def wf_member(x):
    return x


@app.task(name="bench.wf_sum", ignore_result=False)
def wf_sum(xs):
    return sum(xs)


@app.task(name="bench.wf_inc", ignore_result=False)
def wf_inc(x):
    return x + 1
