#!/usr/bin/env python3
"""The daemon half of bench/move_downtime.sh (issue 10, moves; docs/moves.md): run by that
script, which starts and stops two private PostgreSQL servers (their variables in
WORK/pg-c1.env and WORK/pg-c2.env) and exports TM_MASTER_KEY.

One shared workspace (`bench-move`, product `mv`: one migration, `orders (id bigint PRIMARY KEY,
note text)`, no extension) whose manifest names no cluster: the daemon (`tenant-operator`, 4
workers, the store on c1's server) places it on c1 (both empty, the tie goes to the first). Its
`orders` is filled as the admin with about SIZE_MB of rows and their primary key (the table, its
index and TOAST, as tests/e2e/move_itest.cpp does).

Then RUNS times, alternating directions (c1 -> c2, c2 -> c1, ...), each with the machine's load
average before it:

  1. baseline, the DBA's minimal manual procedure on the same data: an empty database made on
     the target server (not timed, as the move's `prepare` is not downtime), then
     `pg_dump -Fc SOURCE | pg_restore --no-owner --no-privileges -d TARGET` with PostgreSQL 15's
     tools, timed wall clock; the copy's row count is checked and it is dropped;
  2. the move: `tenantctl move bench-move --to TARGET --wait` (timed too); its `downtimeMs` from
     `tenantctl get move bench-move -o json` (the runner's own figure: from the suspend override
     to the `Ready` it sees); each step's time from the daemon's log lines of the move's events
     (`MoveStep`, `MoveSwitched`, `MoveSucceeded`: millisecond timestamps; the events API has
     seconds only); the data on the target compared with the source's (count and digest);
     It also says whether the resume pass on the target took a pre-migration backup (it plans
     the migrations, none pending; taken, or reused when one of the same migration is under 15
     minutes old), which counts in the downtime; --before-migrations false (the shell script's
     BEFORE_MIGRATIONS=false) turns backups.beforeMigrations off as a control;
  3. `tenantctl move --prune bench-move` (a kept source blocks the move back); then until the
     daemon's log is quiet for 2 s (the backup's verification runs in the background).

Prints each run and the medians; writes WORK/results.json. The daemon is stopped on the way out;
its pid is also in WORK/daemon.pids for the shell script's trap.
"""
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # importing the other helpers leaves no bench/__pycache__
import daemon_latency as dl  # noqa: E402
import latency_common  # noqa: E402
from clusters_converge import Cluster  # noqa: E402
from latency_common import config_head, say  # noqa: E402
from rollout_fleet import loadavg  # noqa: E402

NAME = "bench-move"
DATABASE = "tenant_bench_move"
BASELINE_DB = "bench_baseline_copy"
PG_BIN = "/usr/lib/postgresql/15/bin"
ROW_BYTES = 150  # what one row of orders takes with its share of the index, about

PRODUCT = """apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: mv}
spec: {image: example/mv, defaultVersion: "1.0.0", migrations: migrations, modes: [shared]}
"""
MIGRATION = "CREATE TABLE orders (id bigint PRIMARY KEY, note text NOT NULL);\n"
WORKSPACE = f"""apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata: {{name: {NAME}}}
spec: {{product: mv, mode: shared}}
"""
# The log line of an event: "<time> <level> workspace NAME: REASON: message"; a move's
# messages begin with its id.
EVENT_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \S+ workspace " + re.escape(NAME)
                      + r": (\w+): (.*)$")
BACKUP_RE = re.compile(r"^pre-migration backup \S+ of database \S+: (.*) in ([\d.]+) s")
STEP_RE = re.compile(r"^(creating|suspending|dumping|restoring|comparing|switching)")
STEP_OF = {"creating": "prepare", "suspending": "suspend", "dumping": "dump",
           "restoring": "restore", "comparing": "verify", "switching": "switch"}
STEPS = ("prepare", "suspend", "dump", "restore", "verify", "switch", "switch_to_ready")


class Daemon(latency_common.Daemon):
    def __init__(self, args, config, log, env, state_dir, token):
        super().__init__(args.operator, config, log, env, state_dir,
                         os.path.join(args.work, "daemon.pids"), token=token)

    def phase(self):
        status, data = self.get("/api/v1/workspaces/" + NAME)
        if status != 200:
            return ""
        return (json.loads(data).get("status") or {}).get("phase", "")

    def wait_phase(self, phase, timeout=120):
        deadline = time.monotonic() + timeout
        while (now := self.phase()) != phase:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{NAME} is {now!r}, not {phase}, after {timeout} s")
            time.sleep(0.1)


def wait_log_quiet(log, quiet=2.0, timeout=60):
    """Until the daemon's log has not grown for `quiet` seconds: the pre-migration backup a
    resume pass takes is verified by a restore into a scratch database in the background
    (BackupVerified), which should not overlap the next run."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = os.path.getsize(log)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


def tool(name):
    return os.path.join(PG_BIN, name)


def dsn(cluster, database):
    return cluster.dsn.replace("dbname=postgres", "dbname=" + database)


def orders(cluster):
    """Rows and an order-free digest of orders, as the bench reads them."""
    return cluster.psql("SELECT count(*) || '/' || md5(string_agg(md5(o::text), '' ORDER BY id))"
                        " FROM orders o", dbname=DATABASE).strip()


def holds(cluster, database):
    return cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{database}'"
                        ).strip() == "1"


def baseline(src, dst, rows):
    """pg_dump -Fc from src piped into pg_restore on dst's fresh database: seconds."""
    if holds(dst, BASELINE_DB):
        dst.psql(f"DROP DATABASE {BASELINE_DB} WITH (FORCE)")
    dst.psql(f"CREATE DATABASE {BASELINE_DB}")
    t0 = time.monotonic()
    dump = subprocess.Popen([tool("pg_dump"), "-Fc", "-d", dsn(src, DATABASE)],
                            stdout=subprocess.PIPE)
    restore = subprocess.run([tool("pg_restore"), "--no-owner", "--no-privileges",
                              "--exit-on-error", "-d", dsn(dst, BASELINE_DB)], stdin=dump.stdout)
    dump.stdout.close()
    dumped = dump.wait()
    seconds = time.monotonic() - t0
    if dumped or restore.returncode:
        raise RuntimeError(f"pg_dump exited {dumped}, pg_restore {restore.returncode}")
    copied = int(dst.psql("SELECT count(*) FROM orders", dbname=BASELINE_DB).strip())
    if copied != rows:
        raise RuntimeError(f"the baseline copy has {copied} rows, not {rows}")
    dst.psql(f"DROP DATABASE {BASELINE_DB} WITH (FORCE)")
    return seconds


def move_events(log, move_id):
    """[(wall seconds, step or reason, message)] of the workspace's events in the daemon's log
    from the move's first to its MoveSucceeded: the move's own (its id stripped), and the
    passes' in between (the suspend and resume passes, a pre-migration backup)."""
    out = []
    inside = False
    with open(log, errors="replace") as f:
        for line in f:
            m = EVENT_RE.match(line.rstrip("\n"))
            if not m:
                continue
            reason, message = m.group(2), m.group(3)
            ours = message.startswith(move_id + ": ")
            if ours:
                message = message[len(move_id) + 2:]
                inside = True
            if not inside or (reason.startswith("Move") and not ours):
                continue
            what = reason
            if reason == "MoveStep":
                s = STEP_RE.match(message)
                what = STEP_OF[s.group(1)] if s else "MoveStep"
            out.append((dl.log_time(m.group(1)), what, message))
            if ours and reason == "MoveSucceeded":
                break
    return out


def resume_backup(events, enabled):
    """What the resume pass on the target did about a pre-migration backup: "taken, SIZE in
    X s", "reused" (it plans its migrations, none pending, and a pre-migration backup of the
    same migration is under 15 minutes old: BackupRunner::BeforeMigrations), "off" or "none"."""
    if not enabled:
        return "off (backups.beforeMigrations: false)"
    for _, what, message in events:
        if what == "BackupSucceeded" and (m := BACKUP_RE.match(message)):
            return f"taken, {m.group(1)} in {m.group(2)} s"
    planned = any(what == "DriftCorrected" and "ApplyMigrations" in message
                  for _, what, message in events)
    return ("reused, under 15 min old (migrations planned, none pending)" if planned
            else "none (no migrations planned)")


def split(events):
    """Seconds of each step, from its event to the next one: prepare, suspend (until the
    workspace is Suspended), dump, restore, verify (both sides summed), switch (the store's
    transaction, to MoveSwitched), and switch_to_ready: from the switch step's event to
    MoveSucceeded (the store's switch, the source's marker, the resume pass, the runner's poll)."""
    at = {}
    for t, what, _ in events:
        at.setdefault(what, t)
    order = ["prepare", "suspend", "dump", "restore", "verify", "switch", "MoveSwitched",
             "MoveSucceeded"]
    out = {}
    for a, b in zip(order, order[1:]):
        if a in at and b in at:
            out[a] = at[b] - at[a]
    if "switch" in at and "MoveSucceeded" in at:
        out["switch_to_ready"] = at["MoveSucceeded"] - at["switch"]
    if "suspend" in at and "MoveSucceeded" in at:
        out["suspend_to_succeeded"] = at["MoveSucceeded"] - at["suspend"]
    return out


def fmt(seconds):
    return "-" if seconds is None else f"{seconds:.2f} s"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def listed(runs, key):
    return ", ".join(f"{r[key]:.2f}" for r in runs)


def main():
    ap = latency_common.arg_parser()
    ap.add_argument("--size-mb", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before-migrations", choices=("true", "false"), default="true",
                    help="the config's backups.beforeMigrations (default true, the operator's)")
    args = ap.parse_args()
    work = args.work
    clusters = {name: Cluster(work, name) for name in ("c1", "c2")}
    tenantctl = os.path.join(os.path.dirname(args.operator), "tenantctl")
    if not os.access(tenantctl, os.X_OK):
        raise SystemExit(f"no tenantctl next to {args.operator}")

    fleet = os.path.join(work, "fleet")
    os.makedirs(os.path.join(fleet, "migrations"))
    os.makedirs(os.path.join(fleet, "workspaces"))
    for path, text in (("product.yaml", PRODUCT), ("migrations/0001_orders.sql", MIGRATION),
                       (f"workspaces/{NAME}.yaml", WORKSPACE)):
        with open(os.path.join(fleet, path), "w") as f:
            f.write(text)
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(config_head(work, token_env="TM_API_TOKEN", clusters="[" + ", ".join(
            f"{{name: {c.name}, dsnEnv: {c.env_var}}}" for c in clusters.values()) + "]"))
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
        f.write(f"backups: {{directory: {work}/backups,"
                f" beforeMigrations: {args.before_migrations}}}\n")
    token = secrets.token_urlsafe(32)
    env = dict(os.environ, TM_API_TOKEN=token)
    for c in clusters.values():
        env[c.env_var] = c.dsn
    log = os.path.join(work, "operator.log")
    results = {"size_mb": args.size_mb, "before_migrations": args.before_migrations, "runs": []}
    daemon = None
    try:
        daemon = Daemon(args, config, log, env, os.path.join(work, "state"), token)
        ctl_env = dict(os.environ, TENANTCTL_SERVER=f"http://127.0.0.1:{daemon.port}",
                       TENANTCTL_TOKEN=token)

        def ctl(*argv, check=True):
            done = subprocess.run([tenantctl, *argv], env=ctl_env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if check and done.returncode:
                raise RuntimeError(f"tenantctl {' '.join(argv)} exited {done.returncode}:\n"
                                   + done.stdout)
            return done

        say(f"backups.beforeMigrations: {args.before_migrations}")
        daemon.wait_phase("Ready")
        where = [n for n, c in clusters.items() if holds(c, DATABASE)]
        if len(where) != 1:
            raise RuntimeError(f"{DATABASE} is on {where}")
        here = clusters[where[0]]
        rows = int(args.size_mb * 1024 * 1024 / ROW_BYTES)
        here.psql("INSERT INTO orders SELECT g, repeat(md5(g::text), 3)"
                  f" FROM generate_series(1, {rows}) g", "VACUUM ANALYZE orders", dbname=DATABASE)
        size = int(here.psql("SELECT pg_total_relation_size('orders')", dbname=DATABASE))
        dbsize = int(here.psql(f"SELECT pg_database_size('{DATABASE}')"))
        before = orders(here)
        results.update(rows=rows, table_bytes=size, database_bytes=dbsize, placed=here.name)
        say(f"{NAME} Ready on {here.name}; orders: {rows} rows, table+index+TOAST"
            f" {size / 2**20:.1f} MiB (database {dbsize / 2**20:.1f} MiB, the catalog included)")

        for run in range(1, args.runs + 1):
            src = here
            dst = clusters["c2" if src.name == "c1" else "c1"]
            load_base = loadavg()
            base = baseline(src, dst, rows)
            daemon.wait_phase("Ready")
            load_move = loadavg()
            t0 = time.monotonic()
            waited = ctl("move", NAME, "--to", dst.name, "--wait", "--timeout", "10m", check=False)
            wall = time.monotonic() - t0
            mv = json.loads(ctl("get", "move", NAME, "-o", "json").stdout)
            if waited.returncode or mv.get("state") != "succeeded":
                raise RuntimeError(f"move {src.name} -> {dst.name} did not succeed (exit"
                                   f" {waited.returncode}):\n{waited.stdout}\n{json.dumps(mv)}")
            time.sleep(0.3)  # the MoveSucceeded line is logged right after the row is saved
            events = move_events(log, mv["id"])
            steps = split(events)
            backup = resume_backup(events, args.before_migrations == "true")
            after = orders(dst)
            if after != before:
                raise RuntimeError(f"orders on {dst.name}: {after}; on the source before: {before}")
            downtime = (mv.get("downtimeMs") or 0) / 1000.0
            r = {"run": run, "from": src.name, "to": dst.name, "id": mv["id"],
                 "load_before_baseline": load_base, "load_before_move": load_move,
                 "baseline": base, "downtime": downtime, "tenantctl_wall": wall,
                 "ratio": downtime / base, "steps": steps, "resume_backup": backup, "verified": mv.get("verified"),
                 "events": [(round(t, 3), w, m) for t, w, m in events],
                 "tenantctl_output": waited.stdout}
            results["runs"].append(r)
            say(f"run {run}: {src.name} -> {dst.name}; load average before: the baseline"
                f" {load_base}, the move {load_move}")
            say(f"  baseline pg_dump -Fc | pg_restore: {base:.2f} s")
            say(f"  move downtime (downtimeMs): {downtime:.2f} s; tenantctl move --wait"
                f" {wall:.2f} s wall; downtime / baseline {r['ratio']:.2f}")
            say("  steps (the daemon log's event lines): "
                + ", ".join(f"{k} {fmt(steps.get(k))}" for k in STEPS))
            say(f"  the resume pass's pre-migration backup: {backup}")
            say(f"  verified: {mv.get('verified')}")
            pruned = ctl("move", "--prune", NAME)
            say(f"  {pruned.stdout.strip()}")
            if holds(src, DATABASE):
                raise RuntimeError(f"{DATABASE} still on {src.name} after the prune")
            here = dst
            wait_log_quiet(log)
    finally:
        if daemon is not None:
            daemon.stop()
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1)

    runs = results["runs"]
    say(f"== summary (medians of {len(runs)} runs) ==")
    say(f"  downtime {fmt(median(r['downtime'] for r in runs))} ({listed(runs, 'downtime')})")
    say(f"  baseline pg_dump -Fc | pg_restore {fmt(median(r['baseline'] for r in runs))}"
        f" ({listed(runs, 'baseline')})")
    say(f"  downtime / baseline {median(r['ratio'] for r in runs):.2f} ({listed(runs, 'ratio')})")
    say("  steps: " + ", ".join(f"{k} {fmt(median(r['steps'].get(k) for r in runs))}"
                                for k in STEPS))
    worst = max(r["downtime"] for r in runs)
    say(f"  goal, downtime under 5 s for a {args.size_mb:g} MB tenant:"
        f" {'met in every run' if worst < 5 else 'NOT met in every run'} (worst {worst:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
