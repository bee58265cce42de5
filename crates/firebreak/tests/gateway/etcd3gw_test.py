"""etcd3gw, unchanged, against Firebreak's HTTP/JSON gateway.

    python3 etcd3gw_test.py HOST PORT OTHER_PORT

PORT and OTHER_PORT are the client ports of two members of one cluster:
the calls go to the first, the writes that watches must see also come
from the second. Run by crates/firebreak/tests/gateway.rs; prints
"etcd3gw: all checks passed" and exits 0, or fails with the first check
that did not hold.
"""

import sys
import threading
import time

from etcd3gw.client import Etcd3Client

checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise SystemExit(f"etcd3gw: FAILED: {what}")
    checks += 1


def main():
    host, port, other_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = Etcd3Client(host=host, port=port, timeout=20)
    other = Etcd3Client(host=host, port=other_port, timeout=20)

    # etcd3gw reads /version to pick the API path.
    check(client.api_path == "/v3/", f"api path {client.api_path}")
    check(client.status()["version"].startswith("3."), "status")
    check(len(client.members()) == 3, "three members")

    # KV.
    check(client.put("gw/a", "apple") is True, "put")
    check(client.get("gw/a") == [b"apple"], f"get: {client.get('gw/a')}")
    client.put("gw/b", b"\x00\xffbanana")
    prefix = client.get_prefix("gw/")
    check([(v, m["key"]) for v, m in prefix] == [(b"apple", b"gw/a"), (b"\x00\xffbanana", b"gw/b")],
          f"get_prefix: {prefix}")
    check(prefix[0][1]["version"] == "1", f"int64 as a string: {prefix[0][1]}")
    check(client.get("gw/none") == [], "get of a missing key")
    check(client.create("gw/c", "x") is True, "create")
    check(client.create("gw/c", "y") is False, "create of an existing key")
    check(client.replace("gw/c", "x", "z") is True, "replace")
    check(client.replace("gw/c", "x", "w") is False, "replace of another value")
    check(client.get("gw/c") == [b"z"], "replaced")
    check(client.delete("gw/a") is True, "delete")
    check(client.delete("gw/a") is False, "delete of a missing key")
    check(client.get("gw/a") == [], "deleted")
    check(client.delete_prefix("gw/") is True, "delete_prefix")
    check(client.get_prefix("gw/") == [], "deleted by prefix")

    # Leases.
    lease = client.lease(ttl=30)
    check(lease.id > 0, f"lease id {lease.id}")
    client.put("gw/leased", "v", lease=lease)
    # etcd truncates the remaining TTL (at most 30 here); Firebreak rounds
    # it up, so a lease just granted may say 31.
    check(0 < lease.ttl() <= 31, f"ttl {lease.ttl()}")
    check(lease.refresh() == 30, "refresh")
    check(lease.keys() == [b"gw/leased"], f"keys {lease.keys()}")
    check(lease.revoke() is True, "revoke")
    check(client.get("gw/leased") == [], "a revoked lease's key is gone")
    check(lease.refresh() == -1, "refresh of a revoked lease")
    check(lease.ttl() == -1, "ttl of a revoked lease")

    # Locks.
    lock = client.lock("gw-lock", ttl=30)
    check(lock.acquire() is True, "acquire")
    check(lock.is_acquired(), "is_acquired")
    rival = other.lock("gw-lock", ttl=30)
    check(rival.acquire() is False, "a held lock is not acquired again")
    check(not rival.is_acquired(), "the rival does not hold it")
    check(lock.refresh() == 30, "refresh of the lock's lease")
    check(lock.release() is True, "release")
    check(not lock.is_acquired(), "released")
    check(rival.acquire() is True, "acquire after release")
    check(rival.release() is True, "release")
    with client.lock("gw-lock2", ttl=30) as held:
        check(held.is_acquired(), "a lock as a context manager")

    # Watches: a put through the other member is seen.
    def later(action):
        def run():
            time.sleep(0.3)
            action()
        threading.Thread(target=run).start()

    events, cancel = client.watch("gw/w")
    later(lambda: other.put("gw/w", "hello"))
    event = next(events)
    check(event["kv"]["key"] == b"gw/w" and event["kv"]["value"] == b"hello", f"watch event {event}")
    later(lambda: other.delete("gw/w"))
    event = next(events)
    check(event.get("type") == "DELETE" and event["kv"]["key"] == b"gw/w", f"delete event {event}")
    cancel()

    events, cancel = client.watch_prefix("gw/p/")
    later(lambda: other.put("gw/p/1", "one"))
    event = next(events)
    check(event["kv"]["key"] == b"gw/p/1" and event["kv"]["value"] == b"one", f"prefix event {event}")
    cancel()

    later(lambda: other.put("gw/once", "1"))
    event = client.watch_once("gw/once", timeout=10)
    check(event["kv"]["value"] == b"1", f"watch_once {event}")

    print(f"etcd3gw: all checks passed ({checks})")


if __name__ == "__main__":
    main()
