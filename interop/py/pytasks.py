"""Python side of taskgen's interop tests: a Celery app whose broker, backend
and serializer come from the environment, with tasks a Go producer calls.

Run by the Go tests with Debian's /usr/bin/python3 (celery 5.2.6).
"""
import os

from celery import Celery

BROKER = os.environ["INTEROP_BROKER"]
BACKEND = os.environ["INTEROP_BACKEND"]
SER = os.environ.get("INTEROP_SERIALIZER", "json")

app = Celery("interop", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_serializer=SER,
    result_serializer=SER,
    accept_content=["json", "msgpack"],
    result_accept_content=["json", "msgpack"],
    enable_utc=True,
    timezone="UTC",
    task_default_queue="celery",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Visibility timeout for the Redis restore tests (seconds).
    broker_transport_options={"visibility_timeout": float(os.environ.get("INTEROP_VISIBILITY") or "3600")},
)


@app.task(name="py.resize_image")
def resize_image(url, width, height=0):
    """A task implemented in Python that Go calls through a remote stub."""
    return {"url": url, "width": width, "height": height or width, "format": "png"}


@app.task(name="py.fail")
def fail(msg):
    raise ValueError(msg)


@app.task(name="py.slow")
def slow(seconds, marker):
    import time

    time.sleep(seconds)
    with open(marker, "a") as f:
        f.write("py\n")
    return "slept"


@app.task(name="shared.slow", acks_late=True)
def shared_slow(seconds, marker):
    """Python twin of the Go task shared.slow."""
    import time

    with open(marker, "a") as f:
        f.write("py-start\n")
    time.sleep(seconds)
    with open(marker, "a") as f:
        f.write("py-done\n")
    return "py"


@app.task(name="py.add")
def py_add(x, y):
    return x + y


@app.task(name="py.mul")
def py_mul(x, y):
    return x * y


@app.task(name="py.tsum")
def py_tsum(xs):
    return sum(xs)


@app.task(name="py.traceparent", bind=True)
def py_traceparent(self):
    """The W3C trace context of the message, read from the task's request
    as opentelemetry-instrumentation-celery reads it (getattr)."""
    return {"traceparent": getattr(self.request, "traceparent", None) or "",
            "tracestate": getattr(self.request, "tracestate", None) or ""}


def _wait_file(path, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("gate %s not opened in %ss" % (path, timeout))
        time.sleep(0.005)


@app.task(name="py.import_rows", bind=True)
def import_rows(self, total, gate):
    """Python twin of the Go task go.import_rows: reports PROGRESS with
    update_state after each row, then waits for the file gate/<row> (the Go
    test steps it)."""
    for row in range(1, total + 1):
        self.update_state(state="PROGRESS", meta={"current": row, "total": total, "note": "row"})
        _wait_file(os.path.join(gate, str(row)))
    return total
