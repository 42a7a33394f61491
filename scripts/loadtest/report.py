#!/usr/bin/env python3
"""The load test's helpers (standard library only).

  report.py snapshot BASE                  -> JSON of the demo's stats and database queries
  report.py stale BASE N SEED OUT          -> writes then reads N users; the stale reads to OUT
  report.py table ON.json OFF.json OUT.md  -> the headline table (printed and written)
"""
import json
import os
import random
import sys
import time
import urllib.request


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)


def snapshot(base):
    stats = get(base, "/api/v1/cache/stats")["cache"]
    db = get(base, "/demo/db-queries")
    return {
        "hits": stats["hits"],
        "misses": stats["misses"],
        "l1_hits": stats["l1_hits"],
        "l2_hits": stats["l2_hits"],
        "status": stats.get("status", "enabled"),
        "queries": db["queries"],
        "db_latency_ms": db["latency_ms"],
    }


USERS = int(os.environ.get("LOADTEST_USERS", "100"))
ZIPF_S = float(os.environ.get("LOADTEST_ZIPF_S", "1.0"))
WEIGHTS = [1 / (k ** ZIPF_S) for k in range(1, USERS + 1)]


def zipf_user(rng):
    """A user drawn like the load's (Zipf over the same users)."""
    return rng.choices(range(1, USERS + 1), weights=WEIGHTS)[0]


def stale(base, n, seed, out, pause=0.05):
    """After each write, a read of the same user on the same instance must see it."""
    rng = random.Random(seed)
    checked = stale_reads = failed = requests = 0
    examples = []
    for i in range(n):
        uid = zipf_user(rng)
        name = f"stale-check {seed}-{i}"
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(
            f"{base}/users/{uid}", data=body, method="PUT",
            headers={"Content-Type": "application/json"})
        try:
            requests += 1
            with urllib.request.urlopen(req, timeout=10) as r:
                json.load(r)
            requests += 1
            seen = get(base, f"/users/{uid}")["name"]
        except Exception as e:  # a failed pair is counted apart, never as fresh
            failed += 1
            examples.append(f"user {uid}: {e}")
            continue
        checked += 1
        if seen != name:
            stale_reads += 1
            if len(examples) < 5:
                examples.append(f"user {uid}: wrote {name!r}, read {seen!r}")
        time.sleep(pause)
    with open(out, "w") as f:
        json.dump({"checked": checked, "stale": stale_reads, "failed": failed,
                   "requests": requests, "examples": examples}, f)


def ratio(a, b):
    return a / b if b else float("inf")


def table(on_path, off_path, out_path):
    on, off = (json.load(open(p)) for p in (on_path, off_path))

    def derived(p):
        w, before, after = p["wrk"], p["before"], p["after"]
        hits = after["hits"] - before["hits"]
        misses = after["misses"] - before["misses"]
        reads = hits + misses
        queries = after["queries"] - before["queries"]
        # The stale checker's requests load the database too: they count as requests.
        requests = w["requests"] + p["stale"]["requests"]
        return {
            "hit_rate": hits / reads if reads else 0.0,
            "rps": w["requests"] / (w["duration_us"] / 1e6),
            "p50_ms": w["p50_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "qpr": queries / requests if requests else 0.0,
            "status": after["status"],
            "requests": w["requests"],
            "errors": sum(v for k, v in w.items() if k.startswith("errors_")),
            "stale": p["stale"]["stale"],
            "checked": p["stale"]["checked"],
            "stale_failed": p["stale"]["failed"],
        }

    a, b = derived(on), derived(off)
    fewer = 1 - ratio(a["qpr"], b["qpr"])
    cfg = on["config"]
    lines = [
        f"Load test: {cfg['duration']} s per run, {cfg['connections']} connections "
        + (f"each waiting {cfg['think_ms']:g} ms between requests" if cfg['think_ms'] else "in a closed loop")
        + f", {cfg['threads']} wrk thread(s), "
        f"Zipf(s = {cfg['zipf_s']}) over {cfg['users']} users and {cfg['freight']} freight, {cfg['write_pct']} % writes, seed {cfg['seed']}, "
        f"database round trip {on['after']['db_latency_ms']:g} ms, Redis {cfg['redis']}; {cfg['machine']}.",
        "",
        "| | cache on | cache off (`CACHE_ENABLED=false`) | on vs off | target | product description |",
        "|---|---:|---:|---:|---:|---:|",
        f"| hit rate | {a['hit_rate']:.1%} | {b['hit_rate']:.1%} | | ≥ 90 % | 84 % |",
        f"| requests/s | {a['rps']:,.0f} | {b['rps']:,.0f} | {ratio(a['rps'], b['rps']):.1f}× | | |",
        f"| p50 latency | {a['p50_ms']:.3f} ms | {b['p50_ms']:.3f} ms | {ratio(b['p50_ms'], a['p50_ms']):.1f}× faster | ≥ 10× | 3–5× |",
        f"| p99 latency | {a['p99_ms']:.3f} ms | {b['p99_ms']:.3f} ms | {ratio(b['p99_ms'], a['p99_ms']):.1f}× faster | | |",
        f"| database queries per request | {a['qpr']:.4f} | {b['qpr']:.4f} | {fewer:.1%} fewer | ≥ 85 % fewer | 70 % fewer |",
        f"| stale reads after a write (sampled) | {a['stale']} of {a['checked']} | {b['stale']} of {b['checked']} | | 0 | |",
        f"| requests (errors) | {a['requests']:,} ({a['errors']}) | {b['requests']:,} ({b['errors']}) | | | |",
    ]
    met = [
        ("hit rate ≥ 90 %", a["hit_rate"] >= 0.90),
        ("p50 ≥ 10× faster", ratio(b["p50_ms"], a["p50_ms"]) >= 10),
        ("≥ 85 % fewer database queries", fewer >= 0.85),
        ("0 stale reads", a["stale"] == 0 and b["stale"] == 0 and a["checked"] > 0 and b["checked"] > 0),
        ("no failed requests", a["errors"] == 0 and b["errors"] == 0
         and a["stale_failed"] == 0 and b["stale_failed"] == 0),
        ("the runs were on and off", a["status"] == "enabled" and b["status"] == "disabled"),
    ]
    lines += ["", "Targets: " + ", ".join(f"{n} {'met' if ok else 'MISSED'}" for n, ok in met) + "."]
    for name, run in (("on", on), ("off", off)):
        for e in run["stale"]["examples"]:
            lines.append(f"- stale or failed read (cache {name}): {e}")
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    print(text)
    return 0 if all(ok for _, ok in met) else 1


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "snapshot":
        print(json.dumps(snapshot(argv[2])))
    elif cmd == "stale":
        stale(argv[2], int(argv[3]), int(argv[4]), argv[5])
    elif cmd == "table":
        return table(argv[2], argv[3], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
