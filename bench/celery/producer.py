"""Producer of taskgen's side-by-side benchmark for Python Celery.

  producer.py enqueue N THREADS   send N bench.noop; print the elapsed seconds
  producer.py latency RATE SECS   send RATE bench.lat per second for SECS seconds
  producer.py workflow chord|chain N
                                  run that workflow once and print "SECONDS SENT RESULT"
                                  (needs BENCH_BACKEND; BENCH_WF_GET=fresh|chained, see _wait)
"""
import os
import sys
import threading
import time

from celery import chain, chord, group

from benchtasks import app, lat, noop, wf_inc, wf_member, wf_sum


def enqueue(n, threads):
    left = [n]
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            noop.apply_async(args=(str(time.time_ns()),))

    noop.apply_async(args=(str(time.time_ns()),))  # connect first
    ts = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(time.perf_counter() - start)


def latency(rate, secs):
    total = int(rate * secs)
    p = 4
    lat.apply_async(args=(str(time.time_ns()),))  # connect first (one extra sample)
    start = time.perf_counter() + 0.01

    def work(k):
        for i in range(k, total, p):
            d = start + i / rate - time.perf_counter()
            if d > 0:
                time.sleep(d)
            lat.apply_async(args=(str(time.time_ns()),))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(p)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(time.perf_counter() - start)


def _wait(res):
    """Waits for res and returns its value.

    By default on a fresh AsyncResult of the same id (BENCH_WF_GET=fresh):
    in Celery 5.2.6, AsyncResult.get() on the result apply_async returned
    walks every parent (a chord's GroupResult of N members, a chain's N-1
    steps) after each pub/sub message it reads (_maybe_reraise_parent_error
    as on_interval), and the producer reads one message per header member
    (RedisBackend.on_task_call subscribes to every task it sends), so a
    chord whose body has not finished when apply_async returns costs O(N^2)
    in the producer: 140-210 s for 10 000 members on the 2-core benchmark
    machine. BENCH_WF_GET=chained measures that plain res.get().
    """
    if os.environ.get("BENCH_WF_GET", "fresh") == "chained":
        return res.get(timeout=600)
    return app.AsyncResult(res.id).get(timeout=600)


def _build(kind, n):
    if kind == "chord":
        return chord(group([wf_member.si(i % 10) for i in range(n)]), wf_sum.s())
    if kind == "chain":
        return chain(wf_inc.si(0), *[wf_inc.s() for _ in range(n - 1)])
    raise ValueError(kind)


def workflow(kind, n):
    """Runs one workflow in this fresh process and prints "SECONDS SENT
    RESULT": the seconds from apply_async until its result (the chord
    body's, the chain's last step's) is read, the seconds apply_async took,
    and that result. A fresh process per workflow, so that no subscription
    or buffered message of an earlier workflow is left in the producer's
    result consumer; a chain of 3 first (not timed) opens the broker and
    backend connections. The signature is built before the clock starts, as
    the Go side builds its own before Delay."""
    v = _wait(_build("chain", 3).apply_async())
    assert v == 3, v
    sig = _build(kind, n)
    start = time.perf_counter()
    res = sig.apply_async()
    sent = time.perf_counter() - start
    v = _wait(res)
    el = time.perf_counter() - start
    print(el, sent, v, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "enqueue":
        enqueue(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "latency":
        latency(float(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "workflow":
        workflow(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
