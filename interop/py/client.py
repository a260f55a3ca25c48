"""Python client for the interop tests: sends a task by name to the Go worker
and prints the outcome as one JSON line on stdout.

usage: client.py send TASK ARGS_JSON KWARGS_JSON [QUEUE]   -> {"id": ..., "result": ...} or {"id": ..., "error": {...}}
       client.py send_traced TASK ARGS_JSON QUEUE TRACEPARENT -> the same; the message carries the traceparent
         header where opentelemetry-instrumentation-celery's before_task_publish injects it
       client.py state ID                                   -> {"state": ..., "result": ...}
       client.py inspect METHOD                             -> {"replies": {...}}
       client.py workflow KIND GOQ PYQ [BODY]                 -> {"id": ..., "result": ...} or {"error": {...}}
         KIND: chain, group, chord (BODY: go.tsum or py.tsum), chord_fail, mixed_chain
       client.py restore GROUP_ID                            -> {"result": [...]}
       client.py progress TASK ARGS_JSON QUEUE               -> {"id": ...}, then one line per stdin line:
         "await N": polls AsyncResult.state/.info until PROGRESS with info["current"] == N (30 s at most)
         -> {"state": ..., "info": ...}; "get" -> {"state": ..., "result": ...}
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
    elif cmd == "send_traced":
        name, args, queue, tp = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
        res = app.send_task(name, args=args, queue=queue, headers={"traceparent": tp})
        print(json.dumps({"id": res.id, "result": res.get(timeout=30), "state": res.state}))
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
    elif cmd == "workflow":
        workflow(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else "")
    elif cmd == "progress":
        progress(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
    elif cmd == "restore":
        res = app.GroupResult.restore(sys.argv[2])
        print(json.dumps({"id": res.id, "result": res.get(timeout=30)}))
    else:
        sys.exit("unknown command " + cmd)


def progress(name, args, queue):
    """Sends a task and reads its progress as a web app polling it would:
    the caller's AsyncResult(id).state and .info (with rpc:// only the
    caller can)."""
    import time

    res = app.send_task(name, args=args, queue=queue)
    print(json.dumps({"id": res.id}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "await":
            want = int(words[1])
            deadline = time.monotonic() + 30
            while True:
                state, info = res.state, res.info
                done = state == "PROGRESS" and isinstance(info, dict) and info.get("current") == want
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            print(json.dumps({"state": state, "info": info}, default=repr), flush=True)
        elif words[0] == "get":
            value = res.get(timeout=30)
            print(json.dumps({"state": res.state, "result": value}), flush=True)
            return


def workflow(kind, goq, pyq, body):
    from celery import chain, chord, group

    def s(name, *args, q, immutable=False):
        return app.signature(name, args=args, queue=q, immutable=immutable)

    out = {}
    try:
        if kind == "chain":  # (2 + 2) * 4 + 10
            res = chain(s("go.add", 2, 2, q=goq), s("go.mul", 4, q=goq), s("go.add", 10, q=goq)).apply_async()
        elif kind == "mixed_chain":  # (1 + 1) * 3 + 4, steps alternating Go and Python workers
            res = chain(s("go.add", 1, 1, q=goq), s("py.mul", 3, q=pyq), s("go.add", 4, q=goq)).apply_async()
        elif kind == "group":
            res = group(s("go.mul", i, i, q=goq, immutable=True) for i in range(5)).apply_async()
            res.save()
        elif kind == "chord":  # sum of i + 1 for i < 10 = 55
            bq = goq if body.startswith("go.") else pyq
            res = chord([s("go.add", i, 1, q=goq) for i in range(10)], s(body, q=bq)).apply_async()
        elif kind == "chord_fail":
            res = chord([s("go.add", 1, 1, q=goq), s("go.fail", "member down", q=goq)], s("go.tsum", q=goq)).apply_async()
        else:
            sys.exit("unknown workflow " + kind)
        out["id"] = res.id
        if kind == "chord_fail":
            # get() re-raises the failed member's error first (the header is
            # the body's parent): read what the body itself stored.
            body = app.AsyncResult(res.id)
            body.get(timeout=60, propagate=False)
            out["state"] = body.state
            raise body.result
        out["result"] = res.get(timeout=60)
    except Exception as exc:
        out["error"] = {"class": type(exc).__name__, "module": type(exc).__module__, "args": [str(a) for a in exc.args]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
