#!/usr/bin/env python3
"""The daemon half of bench/binding_latency.sh (issue 17): run by that script, which starts and
stops the private PostgreSQL and exports its PG* variables, TM_PG_DSN and TM_MASTER_KEY.

One daemon (directory source, `bindings: {dir}`), a small converged fleet of shared workspaces,
then COUNT new shared workspaces added one at a time: each manifest is written to a temporary
file outside the watched tree and renamed into it (the clock starts right before the rename).
Two pollers run meanwhile:
  - the status: GET /api/v1/workspaces/<name> with the admin token every 20 ms (a new connection
    each), until phase Ready at observedGeneration == generation;
  - the binding: `<bindings.dir>/<product>/<name>/uri` every 5 ms, until it exists.
Printed per workspace and as min/median/max: manifest -> binding present, manifest -> Ready, and
the gap Ready -> binding present (negative: the binding was there before the status said Ready;
the reconcile writes the binding before the status). Each time is when the poller saw it, so a
time is late by up to its poll period (20 ms for Ready, 5 ms for the binding).

The daemon is stopped on the way out (SIGTERM, then SIGKILL); its pid is also in WORK/daemon.pids
for the shell script's trap.
"""
import json
import os
import statistics
import sys
import threading
import time

sys.dont_write_bytecode = True  # importing latency_common leaves no bench/__pycache__
import latency_common  # noqa: E402
from latency_common import say, workspace_doc  # noqa: E402

STATUS_POLL = 0.020
FILE_POLL = 0.005


class Daemon(latency_common.Daemon):
    def ready(self, name):
        """Ready at the generation it has (observedGeneration == generation)."""
        w = self.workspace(name)
        return w is not None and w[2] == "Ready" and w[1] == w[0]


def poll_until(check, period, deadline):
    """Calls check() every `period` until true; returns the monotonic time of the answer that was
    true and the time since the previous answer (the event happened in between)."""
    previous = time.monotonic()
    while True:
        ok = check()
        now = time.monotonic()
        if ok:
            return now, now - previous
        if now > deadline:
            raise RuntimeError("timed out")
        previous = now
        time.sleep(period)


def stats_line(label, values_ms):
    return (f"  {label:<34} min {min(values_ms):7.1f}  median {statistics.median(values_ms):7.1f}"
            f"  max {max(values_ms):7.1f} ms")


def main():
    p = latency_common.arg_parser()
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--fleet", type=int, default=20)
    args = p.parse_args()

    work = args.work
    fleet = os.path.join(work, "fleet")
    tmpdir = os.path.join(work, "tmp")
    bindings = os.path.join(work, "bindings")
    os.makedirs(tmpdir)
    initial = [f"ferreteria-{i:03d}" for i in range(1, args.fleet + 1)]
    latency_common.make_fleet(args.root, fleet, initial)
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(latency_common.config_head(work, token_env="TM_ADMIN_TOKEN"))
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
        f.write(f"bindings: {{dir: {work}/bindings}}\n")
    token = "bench-admin-" + os.urandom(12).hex()
    env = dict(os.environ, TM_ADMIN_TOKEN=token)

    d = Daemon(args.operator, config, os.path.join(work, "daemon.log"), env,
               os.path.join(work, "state"), os.path.join(work, "daemon.pids"), token)
    rows = []
    try:
        t0 = time.monotonic()
        for name in initial:
            poll_until(lambda: d.ready(name), 0.1, time.monotonic() + 600)
        say(f"initial fleet: {args.fleet} shared workspaces Ready after "
            f"{time.monotonic() - t0:.1f} s (from the daemon's start)")
        missing = [n for n in initial
                   if not os.path.exists(os.path.join(bindings, "bench", n, "uri"))]
        if missing:
            raise RuntimeError(f"Ready without a binding: {missing[:5]}")
        time.sleep(1.0)  # let the initial converge's tail (events, flushes) settle

        say(f"{args.count} new shared workspaces, one at a time (status polled every "
            f"{STATUS_POLL * 1000:.0f} ms, the binding's uri every {FILE_POLL * 1000:.0f} ms):")
        for k in range(1, args.count + 1):
            name = f"panaderia-nueva-{k:03d}"
            uri = os.path.join(bindings, "bench", name, "uri")
            tmp = os.path.join(tmpdir, name + ".yaml.tmp")
            with open(tmp, "w") as f:
                f.write(workspace_doc(name))
            result = {}

            def watch_file():
                result["binding"] = poll_until(lambda: os.path.exists(uri), FILE_POLL,
                                               time.monotonic() + 60)

            watcher = threading.Thread(target=watch_file)
            t_write = time.monotonic()
            os.rename(tmp, os.path.join(fleet, "workspaces", name + ".yaml"))
            watcher.start()
            t_ready, ready_unc = poll_until(lambda: d.ready(name), STATUS_POLL,
                                            time.monotonic() + 60)
            watcher.join()
            t_bind, bind_unc = result["binding"]
            with open(uri) as f:
                if not f.read().startswith("postgresql://"):
                    raise RuntimeError(f"{uri} is not a postgresql:// URI")
            row = {"name": name, "to_binding": (t_bind - t_write) * 1000,
                   "to_ready": (t_ready - t_write) * 1000, "gap": (t_bind - t_ready) * 1000,
                   "ready_unc": ready_unc * 1000, "bind_unc": bind_unc * 1000}
            rows.append(row)
            say(f"  {name}: manifest -> binding {row['to_binding']:7.1f} ms, "
                f"-> Ready {row['to_ready']:7.1f} ms, Ready -> binding {row['gap']:+7.1f} ms "
                f"(poll slack: Ready {row['ready_unc']:.1f} ms, binding {row['bind_unc']:.1f} ms)")
            time.sleep(0.3)
    finally:
        d.stop()

    say("summary:")
    say(stats_line("manifest written -> binding present", [r["to_binding"] for r in rows]))
    say(stats_line("manifest written -> status Ready", [r["to_ready"] for r in rows]))
    say(stats_line("Ready -> binding present (gap)", [r["gap"] for r in rows]))
    before = sum(1 for r in rows if r["gap"] <= 0)
    say(f"  binding present before or when Ready was seen: {before} of {len(rows)}; "
        f"goal: present within 1000 ms of Ready: "
        f"{'met' if max(r['gap'] for r in rows) < 1000 else 'MISSED'}")
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
