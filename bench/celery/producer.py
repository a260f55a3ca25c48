"""Producer of taskgen's side-by-side benchmark for Python Celery.

  producer.py enqueue N THREADS   send N bench.noop; print the elapsed seconds
  producer.py latency RATE SECS   send RATE bench.lat per second for SECS seconds
"""
import sys
import threading
import time

from benchtasks import app, lat, noop


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


if __name__ == "__main__":
    if sys.argv[1] == "enqueue":
        enqueue(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "latency":
        latency(float(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(__doc__)
