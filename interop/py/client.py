"""Python client for the interop tests: sends a task by name to the Go worker
and prints the outcome as one JSON line on stdout.

usage: client.py send TASK ARGS_JSON KWARGS_JSON [QUEUE]   -> {"id": ..., "result": ...} or {"id": ..., "error": {...}}
       client.py state ID                                   -> {"state": ..., "result": ...}
       client.py inspect METHOD                             -> {"replies": {...}}
"""
import json
import sys

from pytasks import app


def main():
    cmd = sys.argv[1]
    if cmd == "send":
        name, args, kwargs = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
        queue = sys.argv[5] if len(sys.argv) > 5 else "celery"
        res = app.send_task(name, args=args, kwargs=kwargs, queue=queue)
        try:
            value = res.get(timeout=30)
            print(json.dumps({"id": res.id, "result": value, "state": res.state}))
        except Exception as exc:  # the Go task's error, re-raised by Celery
            print(json.dumps({"id": res.id, "state": res.state, "error": {
                "class": type(exc).__name__, "module": type(exc).__module__, "args": [str(a) for a in exc.args]}}))
    elif cmd == "state":
        res = app.AsyncResult(sys.argv[2])
        out = {"state": res.state}
        if res.state in ("RETRY", "FAILURE"):
            exc = res.result
            out["error"] = {"class": type(exc).__name__, "args": [str(a) for a in getattr(exc, "args", [])]}
        print(json.dumps(out))
    elif cmd == "inspect":
        method = sys.argv[2]
        i = app.control.inspect(timeout=2.0)
        replies = getattr(i, method)()
        print(json.dumps({"replies": replies}, default=str))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
