#!/usr/bin/python3
"""Capture Celery canvas (workflow) wire fixtures without a running broker.

Run with Debian's interpreter (python3-celery 5.2.6, python3-kombu 5.2.4,
python3-msgpack 1.0.3, python3-redis 4.3.4):

    /usr/bin/python3 testdata/celery/canvas/capture.py [OUTDIR]

OUTDIR defaults to the directory of this script.

How it works
------------
* The broker is kombu's in-process ``memory://`` transport.  kombu's virtual
  transport base (shared by the memory and Redis transports) builds the message
  envelope (base64 body, content-type, headers, properties with delivery_info
  and delivery_tag).  ``memory.Channel._put`` is wrapped so every envelope is
  recorded at publish time; the queue is then drained with a real kombu
  consumer (``SimpleQueue``) and the consumed ``message.body`` is checked to be
  byte-identical to the base64-decoded envelope body.
* The result backend is the real ``celery.backends.redis.RedisBackend``, with
  its two network touch points replaced: ``set`` records (key, value) instead of
  talking to Redis, and ``on_task_call`` / ``add_pending_result`` (which only
  subscribe to the result pub/sub channel on the client side) are no-ops.  So ``set_chord_size`` / ``GroupResult.save``
  produce exactly the keys and values Celery would SET on Redis.
* Determinism: every ``uuid`` that Celery/kombu generate
  (``kombu.utils.uuid.uuid`` and every module-level alias of it, including the
  transport's delivery_tag) is replaced by a per-fixture counter, the
  ``origin`` header (normally ``gen<pid>@<hostname>``) is fixed to
  ``gen4242@capture`` and the client oid used as ``reply_to`` (normally a uuid3
  of MAC address + id(app)) is fixed.
"""
import base64
import json
import os
import sys

import msgpack
import kombu
import kombu.utils.uuid
import kombu.transport.memory as kmemory
from kombu.utils.json import dumps as kombu_json_dumps

import celery
import celery.app.amqp
from celery import Celery, chain, chord, group
from celery.backends.redis import RedisBackend
from celery.result import GroupResult

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
SERIALIZERS = ('json', 'msgpack')
REPLY_TO = '2bf3c195-426e-35e8-b5df-989f3023be80'
ORIGIN = 'gen4242@capture'

# --------------------------------------------------------------------------
# deterministic ids

_orig_uuid = sys.modules['kombu.utils.uuid'].uuid


class Ids:
    prefix = 0
    n = 0

    @classmethod
    def reset(cls, prefix):
        cls.prefix, cls.n = prefix, 0

    @classmethod
    def next(cls, _uuid=None):
        cls.n += 1
        # valid RFC 4122 version-4 layout: <8 hex fixture>-0000-4000-8000-<12 hex counter>
        return '%08x-0000-4000-8000-%012x' % (cls.prefix, cls.n)


def _fake_uuid(_uuid=None):
    return Ids.next()


def patch_uuids():
    patched = []
    for name, mod in list(sys.modules.items()):
        if mod is None:
            continue
        if getattr(mod, 'uuid', None) is _orig_uuid:
            setattr(mod, 'uuid', _fake_uuid)
            patched.append(name)
    return sorted(patched)


celery.app.amqp.anon_nodename = lambda *a, **kw: ORIGIN

# --------------------------------------------------------------------------
# broker capture (memory transport)

PUBLISHED = []  # list of (queue, envelope-json-text)
_orig_put = kmemory.Channel._put


def _recording_put(self, queue, message, **kwargs):
    # exactly what kombu's Redis transport would LPUSH: kombu.utils.json.dumps(message)
    PUBLISHED.append((queue, kombu_json_dumps(message)))
    return _orig_put(self, queue, message, **kwargs)


kmemory.Channel._put = _recording_put

# --------------------------------------------------------------------------
# result backend capture


class RecordingRedisBackend(RedisBackend):
    """Real RedisBackend; SET is recorded instead of sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def set(self, key, value, **retry_policy):
        # keys are bytes (KeyValueStoreBackend.get_key_for_*); store as text
        self.calls.append(('set', key.decode() if isinstance(key, bytes) else key, value))

    def on_task_call(self, producer, task_id):
        return {}  # would SUBSCRIBE to celery-task-meta-<id>

    def add_pending_result(self, result, weak=False, start_drainer=True):
        return result  # client-side result tracking (pub/sub); not wire-relevant


# --------------------------------------------------------------------------
# app


def make_app(serializer):
    app = Celery('capture', broker='memory://', set_as_current=True)
    app.conf.update(
        task_serializer=serializer,
        result_serializer=serializer,
        accept_content=[serializer],
        result_accept_content=[serializer],
        result_backend='redis://127.0.0.1:6379/0',
        enable_utc=True,
        timezone='UTC',
    )
    app._local.oid = REPLY_TO
    app._local.backend = RecordingRedisBackend(app=app, url='redis://127.0.0.1:6379/0')

    @app.task(name='tasks.add')
    def add(x, y):
        return x + y

    @app.task(name='tasks.mul')
    def mul(x, y):
        return x * y

    @app.task(name='tasks.tsum')
    def tsum(nums):
        return sum(nums)

    @app.task(name='tasks.on_err')
    def on_err(task_id):
        return task_id

    app.finalize(auto=True)
    app.T = dict(add=add, mul=mul, tsum=tsum, on_err=on_err)
    return app


# --------------------------------------------------------------------------
# output helpers


def decode_body(raw, content_type):
    if content_type == 'application/json':
        return json.loads(raw.decode('utf-8'))
    if content_type == 'application/x-msgpack':
        return msgpack.unpackb(raw, raw=False)
    raise ValueError(content_type)


def jsonable(obj):
    if isinstance(obj, bytes):
        return {'__bytes_b64__': base64.b64encode(obj).decode()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    return obj


def write(path, data):
    with open(os.path.join(OUT, path), 'wb') as f:
        f.write(data)
    WRITTEN.append(path)


def write_json(path, obj):
    write(path, (json.dumps(obj, indent=1, ensure_ascii=True) + '\n').encode())


WRITTEN = []


def drain(app):
    """Consume everything on queue 'celery' with a real kombu consumer."""
    out = []
    with app.connection_for_read() as conn:
        q = conn.SimpleQueue('celery', no_ack=True)
        while True:
            try:
                m = q.get(block=False)
            except q.Empty:
                break
            out.append(m)
        q.close()
    return out


def emit_messages(app, name, ser, note=None):
    consumed = drain(app)
    pubs = list(PUBLISHED)
    PUBLISHED.clear()
    assert len(consumed) == len(pubs), (name, len(consumed), len(pubs))
    multi = len(pubs) > 1
    for i, ((queue, env_text), m) in enumerate(zip(pubs, consumed)):
        env = json.loads(env_text)
        raw = base64.b64decode(env['body'])
        assert raw == m.body, 'consumed body differs from published body'
        assert env['headers'] == m.headers
        suffix = '%s%d' % (name, i) if multi else name
        base = '%s.%s' % (suffix, ser)
        write(base + '.body.bin', raw)
        write(base + '.redis.bin', env_text.encode('utf-8'))
        props = env['properties']
        meta = {
            'content_type': env['content-type'],
            'content_encoding': env['content-encoding'],
            'exchange': props['delivery_info']['exchange'],
            'routing_key': props['delivery_info']['routing_key'],
            'queue': queue,
            'properties': props,
            'headers': env['headers'],
        }
        try:
            meta['body_decoded'] = jsonable(decode_body(raw, env['content-type']))
        except msgpack.ExtraData as exc:
            # Celery 5.2.6 bug: canvas.group defines __len__ = len(self.tasks), and
            # msgpack's packer takes a dict subclass's map length from len(), so
            # every *nested group signature* is written as a map header of
            # len(tasks) entries followed by all 6 key/value pairs.  The body is
            # therefore not one valid msgpack object; a worker rejects it.
            u = msgpack.Unpacker(raw=False)
            u.feed(raw)
            meta['body_decode_error'] = 'msgpack.ExtraData: %s' % (exc,)
            meta['body_decoded_stream'] = jsonable(list(u))
        if note:
            meta['note'] = note
        write_json(base + '.meta.json', meta)


def emit_backend(app, name, ser):
    calls = app.backend.calls[:]
    app.backend.calls.clear()
    rec = []
    for op, key, value in calls:
        # RedisBackend._set: MULTI; SETEX key <expires> value (SET if expires is
        # falsy); PUBLISH key value; EXEC
        item = {'op': op, 'key': key, 'redis_setex_seconds': app.backend.expires}
        if isinstance(value, (bytes, str)):
            b = value if isinstance(value, bytes) else value.encode('utf-8')
            item['value_b64'] = base64.b64encode(b).decode()
            try:
                item['value_decoded'] = jsonable(
                    decode_body(b, 'application/json' if ser == 'json' else 'application/x-msgpack'))
            except Exception:  # plain value
                item['value_text'] = b.decode('utf-8', 'replace')
        else:
            item['value'] = value  # e.g. int chord size (redis-py sends str(int))
        rec.append(item)
    return rec


# --------------------------------------------------------------------------
# cases


def case_chain(app, T):
    chain(T['add'].s(2, 2), T['mul'].s(4), T['add'].si(1, 1)).apply_async()


def case_link(app, T):
    T['add'].apply_async((2, 2), link=T['mul'].s(3), link_error=T['on_err'].s())


def case_group(app, T):
    res = group(T['add'].s(i, i) for i in range(3)).apply_async()
    return res


def case_group_frozen(app, T):
    # a group frozen before apply_async: members get group_index 0..n-1
    g = group([T['add'].s(1, 1), T['add'].s(2, 2)])
    g.freeze()
    g.apply_async()


def case_chord(app, T):
    chord([T['add'].s(1, 1), T['add'].s(2, 2)], T['tsum'].s()).apply_async()


def case_chain_group_middle(app, T):
    # group followed by a task inside a chain is upgraded to a chord
    chain(T['add'].s(1, 1), group(T['mul'].s(2), T['mul'].s(3)), T['tsum'].s(),
          T['mul'].s(10)).apply_async()


def case_chain_chord_middle(app, T):
    chain(T['add'].s(1, 1), chord([T['add'].s(2, 2), T['add'].s(3, 3)], T['tsum'].s()),
          T['mul'].s(10)).apply_async()


def case_chain_group_first(app, T):
    # chain starting with a group that is followed by a task: the header
    # messages are published right away
    chain(group(T['add'].s(1, 1), T['add'].s(2, 2)), T['tsum'].s(),
          T['mul'].s(10)).apply_async()


CASES = [
    # (fixture name, id prefix, function)
    ('chain', 0x11111111, case_chain),
    ('link', 0x22222222, case_link),
    ('group_member', 0x33333333, case_group),
    ('group_frozen_member', 0x88888888, case_group_frozen),
    ('chord_header', 0x44444444, case_chord),
    ('chain_group_middle', 0x55555555, case_chain_group_middle),
    ('chain_chord_middle', 0x66666666, case_chain_chord_middle),
    ('chain_group_first', 0x77777777, case_chain_group_first),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    patched = patch_uuids()
    backend_log = {}
    for ser in SERIALIZERS:
        for name, prefix, fn in CASES:
            app = make_app(ser)
            drain(app)
            PUBLISHED.clear()
            Ids.reset(prefix)
            res = fn(app, app.T)
            emit_messages(app, name, ser)
            calls = emit_backend(app, name, ser)
            if calls:
                backend_log['%s.%s' % (name, ser)] = calls
            if name == 'group_member':
                # GroupResult.save() -> SET celery-taskset-meta-<gid>
                assert isinstance(res, GroupResult)
                res.save()
                for op, key, value in app.backend.calls:
                    b = value if isinstance(value, bytes) else value.encode('utf-8')
                    write('groupresult_save.%s.bin' % ser, b)
                    write_json('groupresult_save.%s.meta.json' % ser, {
                        'op': op, 'key': key,
                        'redis_setex_seconds': app.backend.expires,
                        'result_serializer': ser,
                        'value_decoded': jsonable(decode_body(
                            b, 'application/json' if ser == 'json' else 'application/x-msgpack')),
                    })
                app.backend.calls.clear()
            app.close()
    write_json('backend_calls.json', backend_log)
    write_json('versions.json', {
        'python': sys.version.split()[0],
        'celery': celery.__version__,
        'kombu': kombu.__version__,
        'msgpack': '.'.join(map(str, msgpack.version)),
        'uuid_patched_modules': patched,
    })
    for p in sorted(WRITTEN):
        print(p)


if __name__ == '__main__':
    main()
