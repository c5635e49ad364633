#!/usr/bin/env python3
"""The daemon half of bench/clusters_converge.sh (issue 10): run by that script, which starts and
stops three private PostgreSQL servers (their variables in WORK/pg-c1.env, pg-c2.env,
pg-c3.env) and exports TM_MASTER_KEY.

One fleet of COUNT shared workspaces (the inventory example's three migrations and pg_trgm, one
file each, as bench/daemon_latency.sh) whose manifests name no cluster: the daemon places them
over clusters c1, c2 and c3 (no capacities, so the least used wins; docs/placement.md). The
store is c1's server's database tenant_master (the config's default).

  1. capture (not timed): every server's statement log on, a daemon converges the fleet; each
     server's log becomes psql scripts through bench/replay_from_log.py, 4 per cluster, the
     store's database left out (the daemon's bookkeeping, not the tenants' statements);
  2. psql (the baseline): the bench's databases and roles dropped everywhere, then the 12 scripts
     at once (4 sessions per cluster), timed from the first start to the last exit;
  3. cold converge by the daemon: everything dropped again (the store's database too), a fresh
     daemon timed from its start to every workspace Ready in the store (tm_workspace_status,
     polled every 0.2 s once /metrics counts COUNT successes); its CPU (utime+stime) and
     VmRSS/VmHWM once idle;
  4. no-op resync, RUNS times: the daemon restarted on the converged fleet; from its
     "store: N workspaces" line (its term begins: then it reads the COUNT files and queues every
     workspace) to COUNT successful reconciles in /metrics (polled every 2 ms); the daemon's CPU
     in that window (/proc, 10 ms ticks) and before it (start-up), the statements the three
     servers ran in it (pg_stat_statements), and its VmRSS/VmHWM once idle again.

Every daemon it starts is stopped on the way out; their pids are also listed in WORK/daemon.pids
for the shell script's trap.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # importing the other helpers leaves no bench/__pycache__
import daemon_latency as dl  # noqa: E402
import latency_common  # noqa: E402
from latency_common import config_head, say  # noqa: E402
from rollout_fleet import Psql, loadavg  # noqa: E402

CLUSTERS = ("c1", "c2", "c3")
PARTS = 4  # psql sessions per cluster


class Cluster:
    """One private server: its name in the config and its variables from WORK/pg-NAME.env."""

    def __init__(self, work, name):
        self.name = name
        values = {}
        with open(os.path.join(work, f"pg-{name}.env")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                values[key] = shlex.split(value)[0] if value else ""
        self.dsn = values["TM_PG_DSN"]
        self.port = values["TM_PG_PORT"]
        self.password = values["PGPASSWORD"]
        self.dir = values["TM_PG_DIR"]
        self.env_var = "TM_PG_DSN_" + name.upper()

    def psql(self, *sqls, stdin=None, dbname="postgres"):
        cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
               "-d", self.dsn.replace("dbname=postgres", "dbname=" + dbname)]
        for sql in sqls:
            cmd += ["-c", sql]
        if stdin is not None:
            cmd += ["-f", "-"]
        return subprocess.run(cmd, input=stdin, check=True, text=True,
                              stdout=subprocess.PIPE).stdout

    def drop_bench(self, store=False):
        for what in ("SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database"
                     " WHERE datname LIKE 'tenant\\_bench\\_%'",
                     "SELECT format('DROP ROLE %I;', rolname) FROM pg_roles"
                     " WHERE rolname LIKE 'user\\_bench\\_%'"):
            script = self.psql(what)
            if script.strip():
                self.psql(stdin=script)
        if store:
            self.psql("DROP DATABASE IF EXISTS tenant_master WITH (FORCE)")

    def tenants(self):
        """The bench's databases that carry the operator's final marker."""
        return int(self.psql("SELECT count(*) FROM pg_database WHERE datname LIKE"
                             " 'tenant\\_bench\\_%' AND shobj_description(oid, 'pg_database')"
                             " LIKE '%state=%'").strip())

    def log_statements(self, setting):
        self.psql(f"ALTER SYSTEM SET log_statement = '{setting}'", "SELECT pg_reload_conf()")


def on_all(clusters, fn):
    """fn(cluster) on every cluster at once (threads); re-raises the first failure."""
    errors = []

    def run(c):
        try:
            fn(c)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=run, args=(c,)) for c in clusters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class Stats:
    """pg_stat_statements on every cluster: reset, snapshot, and calls per cluster between two
    snapshots (the helpers' own statements left out, as in bench/daemon_latency.py)."""

    def __init__(self, clusters):
        self.sessions = {c.name: Psql(c.dsn) for c in clusters}
        self.stats = {name: dl.Statements(s) for name, s in self.sessions.items()}

    def reset(self):
        for s in self.stats.values():
            s.reset()

    def snapshot(self):
        return {name: s.snapshot() for name, s in self.stats.items()}

    @staticmethod
    def calls(before, after):
        return {name: sum(c for c, _ in dl.Statements.delta(before[name], after[name]).values())
                for name in after}

    def close(self):
        for s in self.sessions.values():
            s.close()


class Daemon(dl.Daemon):
    def wait_store_line(self, timeout=120):
        """Wall time of the daemon's "store: N workspaces" line (its term began) and N."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, errors="replace") as f:
                f.seek(self.log_offset)
                for line in f.read().splitlines():
                    m = dl.STORE_LINE_RE.match(line)
                    if m:
                        return dl.log_time(m.group(1)), int(m.group(2))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no 'store:' line; see {self.log}")
            time.sleep(0.001)


def main():
    ap = latency_common.arg_parser()
    ap.add_argument("--count", type=int, default=1500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = args.work
    clusters = [Cluster(work, name) for name in CLUSTERS]
    fleet = os.path.join(work, "fleet")
    latency_common.make_fleet(args.root, fleet, [dl.ws_name(i) for i in range(1, args.count + 1)])
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(config_head(work, clusters="[" + ", ".join(
            f"{{name: {c.name}, dsnEnv: {c.env_var}}}" for c in clusters) + "]"))
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
    env = dict(os.environ)
    for c in clusters:
        env[c.env_var] = c.dsn
    for c in clusters:
        c.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    results = {"count": args.count}
    daemons = []

    def start(log, state="state"):
        d = Daemon(args, config, os.path.join(work, log), env, os.path.join(work, state))
        daemons.append(d)
        return d

    def placed():
        counts = {c.name: c.tenants() for c in clusters}
        if sum(counts.values()) != args.count:
            raise RuntimeError(f"{sum(counts.values())} tenants made, not {args.count}: {counts}")
        return counts

    stats = None
    try:
        say(f"== 1. capture: the daemon converges {args.count} workspaces over {len(clusters)}"
            " clusters, statement logs on (not timed) ==")
        on_all(clusters, lambda c: c.log_statements("all"))
        d = start("capture.log", "state-capture")
        d.wait_successes(args.count, timeout=7200, interval=1.0)
        d.wait_idle(quiet=3.0)
        d.stop()
        on_all(clusters, lambda c: c.log_statements("none"))
        results["placed"] = placed()
        say(f"  placed: {results['placed']}")
        pgpass = []
        for c in clusters:
            out = os.path.join(work, "replay", c.name)
            os.makedirs(out)
            shutil.copy(os.path.join(c.dir, "data", "log", "bench.csv"), out)
            summary = subprocess.run(
                [sys.executable, os.path.join(args.root, "bench", "replay_from_log.py"),
                 os.path.join(out, "bench.csv"), out, str(PARTS), env["TM_MASTER_KEY"],
                 "127.0.0.1", c.port, c.name, "postgres", "tenant_master"],
                check=True, text=True, stderr=subprocess.PIPE).stderr.strip()
            say(f"  {c.name}: {summary}")
            with open(os.path.join(out, "pgpass")) as f:
                pgpass.append(f.read())
            pgpass.append(f"127.0.0.1:{c.port}:*:postgres:{c.password}\n")
        pgpass_file = os.path.join(work, "pgpass")
        with open(pgpass_file, "w") as f:
            f.write("".join(pgpass))
        os.chmod(pgpass_file, 0o600)

        say(f"== 2. psql: the same statements, {PARTS} sessions per cluster"
            f" ({PARTS * len(clusters)} at once) ==")
        on_all(clusters, lambda c: c.drop_bench())
        psql_env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        psql_env["PGPASSFILE"] = pgpass_file
        load0 = loadavg()
        t0 = time.monotonic()
        procs = [subprocess.Popen(
            ["psql", "-X", "-q", "-d", f"host=127.0.0.1 port={c.port} user=postgres dbname=postgres",
             "-f", os.path.join(work, "replay", c.name, f"part_{k}.sql")],
            env=psql_env, stdout=subprocess.DEVNULL) for c in clusters for k in range(PARTS)]
        codes = [p.wait() for p in procs]
        results["psql"] = time.monotonic() - t0
        if any(codes):
            raise RuntimeError(f"psql exited with {codes}")
        say(f"  {results['psql']:.2f} s (load average before: {load0}); placed: {placed()}")

        say("== 3. cold converge by the daemon (4 workers) ==")
        on_all(clusters, lambda c: c.drop_bench(store=(c is clusters[0])))
        load0 = loadavg()
        d = start("cold.log", "state-cold")
        d.wait_successes(args.count, timeout=7200, interval=0.5)
        store = Psql(clusters[0].dsn.replace("dbname=postgres", "dbname=tenant_master"))
        while int(store.query("SELECT count(*) FROM tm_workspace_status"
                              " WHERE phase = 'Ready'")[0]) < args.count:
            time.sleep(0.2)
        store.close()
        results["cold"] = time.monotonic() - d.t_start
        results["cold_cpu"] = d.cpu_ticks() / dl.CLK_TCK
        d.wait_idle(quiet=3.0)
        results["cold_status"] = d.proc_status()
        results["cold_placed"] = placed()
        say(f"  {results['cold']:.2f} s to all Ready (load average before: {load0}); daemon CPU"
            f" {results['cold_cpu']:.1f} s; placed: {results['cold_placed']};"
            f" then {results['cold_status']}")
        say(f"  daemon / psql {PARTS} sessions per cluster:"
            f" {results['cold'] / results['psql']:.2f}")
        d.stop()

        say(f"== 4. no-op resync: the daemon restarted on the converged fleet ({args.runs} runs) ==")
        stats = Stats(clusters)
        results["resync"] = []
        for run in range(args.runs):
            stats.reset()
            load0 = loadavg()
            d = start("resync.log", "state-cold")
            start_wall, stored = d.wait_store_line()
            cpu0 = d.cpu_ticks()
            before = stats.snapshot()
            while d.metrics()[0] < args.count:
                if time.time() - start_wall > 600:
                    raise RuntimeError("resync not done after 600 s")
                time.sleep(0.002)
            end_wall = time.time()
            cpu1 = d.cpu_ticks()
            calls = Stats.calls(before, stats.snapshot())
            d.wait_idle(quiet=1.0)
            r = {"seconds": end_wall - start_wall, "stored": stored,
                 "cpu": (cpu1 - cpu0) / dl.CLK_TCK, "cpu_startup": cpu0 / dl.CLK_TCK,
                 "statements": calls, "status": d.proc_status(), "load": load0}
            results["resync"].append(r)
            say(f"  run {run + 1}: store: {stored} -> {args.count} successes in"
                f" {r['seconds']:.3f} s, daemon CPU {r['cpu']:.2f} s (start-up before it"
                f" {r['cpu_startup']:.2f} s); statements {calls}; then {r['status']};"
                f" load average before {load0}")
            d.stop()
    finally:
        for d in daemons:
            d.stop()
        if stats is not None:
            stats.close()
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)

    resync = sorted(results["resync"], key=lambda r: r["seconds"])
    median = resync[len(resync) // 2]
    say("== summary ==")
    say(f"  cold converge of {args.count} over {len(clusters)} clusters: daemon"
        f" {results['cold']:.1f} s, psql with {PARTS} sessions per cluster {results['psql']:.1f} s"
        f" (daemon / psql = {results['cold'] / results['psql']:.2f})")
    say(f"  no-op resync (median of {len(resync)}): {median['seconds']:.3f} s,"
        f" daemon CPU {median['cpu']:.2f} s, statements {median['statements']}")
    rss = [results["cold_status"]] + [r["status"] for r in results["resync"]]
    say(f"  daemon RSS: {results['cold_status']['VmRSS'] / 1024:.1f} MiB after the cold converge"
        f" (peak {results['cold_status']['VmHWM'] / 1024:.1f}); after a resync"
        f" {max(s['VmRSS'] for s in rss[1:]) / 1024:.1f} MiB at most (peak"
        f" {max(s['VmHWM'] for s in rss[1:]) / 1024:.1f}); goal < 128 MB:"
        f" {'met' if max(s['VmHWM'] for s in rss) < 128 * 1024 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
