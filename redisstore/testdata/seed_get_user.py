"""The seed's get_user (../shared/seed, Day 18), with its rebuild lock, for
redisstore's interop test (interop_test.go). Standard library and redis-py
only (Debian: python3-redis); json with compact separators writes what
orjson.dumps writes.

    seed_get_user.py URL get UID [--pause-after-lock] [--delay SECONDS]
    seed_get_user.py URL delete UID
    seed_get_user.py URL burst UID THREADS [--delay SECONDS]

Every command prints JSON lines on stdout: events as they happen
({"event": "waiting"} when a lock held by another is first seen,
{"event": "locked"} when this process took the lock, {"event": "ready"}
when a burst's threads are at their barrier) and a last line with
"event": "done". A burst starts when a line arrives on stdin; so does the
load of a get with --pause-after-lock.

The origin ("the database") is in the same Redis, shared with the Go side:
db:user:{uid} holds a user's JSON (missing: no such user), and every
origin call increments db:calls:{uid}.
"""

import json
import os
import sys
import threading
import time

import redis

LOCK_EX = 5  # SET lock:{key} val NX EX 5
LOCK_WAIT = 5.0  # how long to wait for another's rebuild before loading

out_lock = threading.Lock()


def emit(**kw):
    with out_lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def dumps(x):
    return json.dumps(x, separators=(",", ":")).encode()  # orjson's shape


def loads(b):
    return json.loads(b)


# Compare-and-delete: release the lock only if it is still ours.
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Seed:
    def __init__(self, url, delay=0.0, pause=False):
        self.r = redis.Redis.from_url(url, socket_timeout=5.0)
        self.delay = delay
        self.pause = pause

    def db_fetch_user(self, uid):
        self.r.incr(f"db:calls:{uid}")
        if self.delay:
            time.sleep(self.delay)
        b = self.r.get(f"db:user:{uid}")
        return None if b is None else loads(b)

    def cached(self, key):
        """(found, user) from the cache: {"__nil": true} is a hit for "none"."""
        b = self.r.get(key)
        if b is None:
            return False, None
        data = loads(b)
        if isinstance(data, dict) and data.get("__nil") is True:
            return True, None
        return True, data

    def get_user(self, uid):
        """Returns (user or None, source, waited)."""
        key = f"v1:user:{uid}"
        lock = f"lock:{key}"
        token = f"python-{os.getpid()}-{threading.get_ident()}"
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.01
        waited = False
        while True:
            found, data = self.cached(key)
            if found:
                return data, "cache" if data is not None else "negative", waited
            if self.r.set(lock, token, nx=True, ex=LOCK_EX):
                try:
                    # Another's fill may have landed between the GET and
                    # the lock: check again before calling the origin.
                    found, data = self.cached(key)
                    if found:
                        return data, "cache" if data is not None else "negative", waited
                    if self.pause:
                        emit(event="locked")
                        sys.stdin.readline()
                    return self.rebuild(key, uid) + (waited,)
                finally:
                    self.r.eval(RELEASE, 1, lock, token)
            if not waited:
                waited = True
                emit(event="waiting")
            if time.monotonic() >= deadline:
                # The holder is too slow: load, rather than fail.
                return self.rebuild(key, uid) + (waited,)
            time.sleep(pause)  # the seed: wait briefly and retry
            pause = min(2 * pause, 0.2)

    def rebuild(self, key, uid):
        data = self.db_fetch_user(uid)
        if data is None:
            self.r.setex(key, 60, dumps({"__nil": True}))  # negative, 60 s
            return None, "origin"
        self.r.setex(key, 300, dumps(data))  # 5 minutes
        return data, "origin"


def main():
    args = sys.argv[1:]
    delay = 0.0
    if "--delay" in args:
        i = args.index("--delay")
        delay = float(args[i + 1])
        del args[i : i + 2]
    pause = "--pause-after-lock" in args
    if pause:
        args.remove("--pause-after-lock")
    url, cmd, uid = args[0], args[1], args[2]
    seed = Seed(url, delay, pause)
    if cmd == "get":
        user, source, waited = seed.get_user(uid)
        emit(event="done", user=user, source=source, waited=waited)
    elif cmd == "delete":
        emit(event="done", deleted=seed.r.delete(f"v1:user:{uid}"))
    elif cmd == "burst":
        n = int(args[3])
        barrier = threading.Barrier(n + 1)
        results = [None] * n

        def run(i):
            s = Seed(url, delay)
            s.r.ping()  # connected before the barrier
            barrier.wait()
            user, source, _ = s.get_user(uid)
            results[i] = {"user": user, "source": source}

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        while barrier.n_waiting < n:
            time.sleep(0.001)
        emit(event="ready")
        sys.stdin.readline()
        barrier.wait()
        for t in threads:
            t.join()
        emit(event="done", results=results)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
