"""Python `celery beat` for taskgen's interop tests: the interop app with a
beat_schedule that sends the Go task go.add every second to the Go
worker's queue (INTEROP_BEAT_QUEUE).

    python3 -m celery -A beatapp beat -s DIR/schedule --max-interval 1
"""
import os

from pytasks import app

app.conf.beat_schedule = {
    "go-add-every-second": {
        "task": "go.add",
        "schedule": 1.0,
        "args": (2, 3),
        "options": {"queue": os.environ["INTEROP_BEAT_QUEUE"]},
    },
}
