#!/usr/bin/env python3
"""The daemon half of bench/backup_daemon.sh (issue 15): run by that script, which starts and
stops the private PostgreSQL and exports its PG* variables, TM_PG_DSN and TM_MASTER_KEY.

One daemon (directory source, `backups: {concurrency: 2, verify: list}`, an admin token) on a
fleet of COUNT shared workspaces, each filled with SMALL_MB of rows (generate_series, as the
tenant's role) once converged. Phases:
  1. backups of the COUNT databases: `tenantctl backup --all --wait` against a plain
     `pg_dump --format=custom` loop at the same concurrency (xargs -P), ROUNDS rounds each,
     interleaved (loop first); the daemon's time is also read on /metrics (the moment
     tenant_master_backups_total{kind="manual"} rose by COUNT), within 0.1 s;
  2. manifest edit -> Ready, CHANGES edits with the daemon idle, then CHANGES edits while rounds
     of `tenantctl backup --all --wait` run back to back (an edit counts only when its whole
     window lies inside a round);
  3. a workspace of BIG_MB: a daemon backup (`tenantctl backup NAME --wait`), a plain pg_dump of
     it (what the restore's safety backup costs), then `tenantctl restore NAME --backup ID
     --wait` against a plain `pg_restore --clean --if-exists --no-owner --single-transaction`
     of the same file into the same database (after the daemon's restore: a superuser's
     restore leaves the tables the superuser's, which the tenant's restore could not drop).

Secrets: the API token is made here and reaches the daemon (TM_API_TOKEN) and tenantctl
(TENANTCTL_TOKEN) through their environment; PostgreSQL's password is the exported PGPASSWORD.

Every daemon it starts is stopped on the way out; its pid is also in WORK/daemon.pids for the
shell script's trap.
"""
import json
import math
import os
import pty
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # importing latency_common leaves no bench/__pycache__
import latency_common  # noqa: E402
from latency_common import config_head, say, workspace_doc  # noqa: E402

SUCCESS_RE = re.compile(rb'^tenant_master_reconcile_total\{result="success"\} (\S+)$', re.M)
DEPTH_RE = re.compile(rb"^tenant_master_workqueue_depth (\S+)$", re.M)
BACKUPS_RE = re.compile(rb'^tenant_master_backups_total\{kind="([^"]+)",result="([^"]+)"\} (\d+)$',
                        re.M)
QUEUED_RE = re.compile(r"^backup (\S+)/(\S+) queued$", re.M)
BIG = "bench-big"
# Bytes a row of bench_rows takes with its primary key (measured: about 130).
ROW_BYTES = 130


def pct(values, p):
    """Nearest rank: with 20 values, p99 is the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100.0 * len(ordered)) - 1)]


def ws_name(i):
    return f"bench-{i:04d}"


def fmt_ms(s):
    return f"{s * 1000:.0f} ms"


def mb(n):
    return f"{n / 1e6:.1f} MB"


# --- PostgreSQL ------------------------------------------------------------------------------------

def psql(sql, db="postgres"):
    """Runs a script (psql meta-commands allowed) and returns its rows (-At)."""
    done = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                          input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()[:2000]}")
    return [line for line in done.stdout.splitlines() if line]


def identities(names):
    """workspace -> (database, owner role), from the store (tenant_master.tm_workspaces)."""
    quoted = ",".join("'" + n + "'" for n in names)
    rows = psql("SELECT name, identity_database, identity_owner FROM tm_workspaces"
                f" WHERE name IN ({quoted}) AND identity_database IS NOT NULL", db="tenant_master")
    out = {}
    for row in rows:
        name, db, owner = row.split("|")
        out[name] = (db, owner)
    missing = [n for n in names if n not in out]
    if missing:
        raise RuntimeError(f"no recorded database for {len(missing)} workspace(s): {missing[:5]}")
    return out


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def fill(dbs, data_mb):
    """Each (database, owner): a table bench_rows of about data_mb created as the owner (the
    tenant's role), then VACUUM ANALYZE (hint bits and visibility map set, so the first reader
    does not pay for them). One psql session for all."""
    rows = max(1, int(data_mb * 1e6 / ROW_BYTES))
    script = []
    for db, owner in dbs:
        script.append(f"\\connect {qi(db)}\n"
                      f"SET ROLE {qi(owner)};\n"
                      "CREATE TABLE bench_rows (id bigint PRIMARY KEY, at timestamptz NOT NULL,"
                      " payload text NOT NULL);\n"
                      "INSERT INTO bench_rows SELECT i, timestamptz '2026-01-01 00:00:00+00'"
                      " + i * interval '1 second', md5(i::text) || md5((i * 7)::text)"
                      f" FROM generate_series(1, {rows}) i;\n"
                      "RESET ROLE;\nVACUUM ANALYZE bench_rows;\n")
    psql("".join(script))
    return rows


def sizes(dbs):
    """(sum of bench_rows with its index, sum of the databases) in bytes."""
    data = 0
    for db, _ in dbs:
        data += int(psql("SELECT pg_total_relation_size('bench_rows')", db=db)[0])
    names = ",".join("'" + db.replace("'", "''") + "'" for db, _ in dbs)
    total = int(psql(f"SELECT sum(pg_database_size(datname)) FROM pg_database"
                     f" WHERE datname IN ({names})")[0])
    return data, total


def folder_bytes(path):
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(base, f))
    return total


# --- The daemon ------------------------------------------------------------------------------------

class Daemon(latency_common.Daemon):
    def __init__(self, args, config, log, env, state_dir, token):
        super().__init__(args.operator, config, log, env, state_dir,
                         os.path.join(args.work, "daemon.pids"), token=token)

    def metrics_text(self):
        status, data = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics: {status}")
        return data

    def successes(self):
        data = self.metrics_text()
        m = SUCCESS_RE.search(data)
        d = DEPTH_RE.search(data)
        return (int(float(m.group(1))) if m else 0), (float(d.group(1)) if d else -1)

    def backups(self):
        """{(kind, result): count} from tenant_master_backups_total."""
        return {(k.decode(), r.decode()): int(n)
                for k, r, n in BACKUPS_RE.findall(self.metrics_text())}

    def wait_successes(self, count, timeout):
        deadline = time.monotonic() + timeout
        while True:
            ok, _ = self.successes()
            if ok >= count:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ok}/{count} successful reconciles after {timeout} s")
            time.sleep(0.5)

    def wait_idle(self, quiet=2.0, timeout=300):
        """Until the queue is empty and no reconcile happened for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now_state = self.successes()
            if now_state != last:
                last, since = now_state, time.monotonic()
            elif now_state[1] == 0 and time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)
        say(f"  (not idle after {timeout} s: {last})")

    def wait_ready(self, name, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            w = self.workspace(name)
            if w is not None and w[0] == w[1] and w[2] == "Ready":
                return w
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not Ready after {timeout} s: {w}")
            time.sleep(0.2)

    def catalog(self, name):
        status, data = self.get(f"/api/v1/workspaces/{name}/backups")
        if status != 200:
            raise RuntimeError(f"GET /api/v1/workspaces/{name}/backups: {status} {data[:300]!r}")
        return json.loads(data)


class Ctl:
    """tenantctl with TENANTCTL_SERVER and TENANTCTL_TOKEN in its environment."""

    def __init__(self, path, port, token, work):
        self.path, self.work = path, work
        self.env = dict(os.environ, TENANTCTL_SERVER=f"http://127.0.0.1:{port}",
                        TENANTCTL_TOKEN=token)

    def popen(self, argv, log):
        out = open(os.path.join(self.work, log), "a+")
        out.write(f"$ tenantctl {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen([self.path] + argv, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env, text=True)
        proc.logfile = out
        return proc

    def run(self, argv, log):
        """(exit code, seconds, the output of this call)."""
        path = os.path.join(self.work, log)
        offset = os.path.getsize(path) if os.path.exists(path) else 0
        t0 = time.monotonic()
        proc = self.popen(argv, log)
        rc = proc.wait()
        seconds = time.monotonic() - t0
        proc.logfile.close()
        with open(path) as f:
            f.seek(offset)
            return rc, seconds, f.read()


# --- Phase 1: COUNT backups --------------------------------------------------------------------------

def plain_loop(args, dbs, out):
    """pg_dump --format=custom of every database, args.concurrency at a time (xargs -P)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    subprocess.run(["sync"])
    pg_dump = os.path.join(args.pg_bin, "pg_dump")
    t0 = time.monotonic()
    done = subprocess.run(["xargs", "-P", str(args.concurrency), "-I", "{}", pg_dump,
                           "--format=custom", "-f", os.path.join(out, "{}.dump"), "{}"],
                          input="".join(db + "\n" for db, _ in dbs), capture_output=True,
                          text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump loop failed ({done.returncode}): {done.stderr[:2000]}")
    return {"seconds": seconds, "bytes": folder_bytes(out), "files": len(os.listdir(out))}


def manual_done(counts):
    return counts.get(("manual", "success"), 0) + counts.get(("manual", "failure"), 0)


def daemon_round(args, d, ctl, count):
    """`tenantctl backup --all --wait`: its wall time, and the moment /metrics counted COUNT
    more manual backups (polled every 0.1 s on a new connection)."""
    before = d.backups()
    subprocess.run(["sync"])
    ended = {}
    log = "tenantctl-backup-all.log"
    path = os.path.join(args.work, log)
    offset = os.path.getsize(path) if os.path.exists(path) else 0
    t0 = time.monotonic()
    proc = ctl.popen(["backup", "--all", "--wait", "--timeout", "60m"], log)

    def waiter():
        proc.wait()
        ended["t"] = time.monotonic()
    th = threading.Thread(target=waiter)
    th.start()
    t_metrics = None
    while t_metrics is None:
        after = d.backups()
        if manual_done(after) - manual_done(before) >= count:
            t_metrics = time.monotonic()
            break
        if "t" in ended and time.monotonic() - ended["t"] > 10:
            break
        time.sleep(0.1)
    th.join()
    proc.logfile.close()
    with open(path) as f:
        f.seek(offset)
        output = f.read()
    after = d.backups()
    ids = [m.group(2) for m in QUEUED_RE.finditer(output)]
    failed = after.get(("manual", "failure"), 0) - before.get(("manual", "failure"), 0)
    result = {"cli_seconds": ended["t"] - t0,
              "metrics_seconds": (t_metrics - t0) if t_metrics else None,
              "exit": proc.returncode, "queued": len(ids), "failed": failed}
    if ids:
        quoted = ",".join("'" + i + "'" for i in ids)
        row = psql("SELECT count(*), coalesce(sum(size_bytes), 0), coalesce(sum(duration_ms), 0),"
                   " count(*) FILTER (WHERE state = 'failed')"
                   f" FROM tm_backups WHERE id IN ({quoted})", db="tenant_master")[0]
        n, size, ms, nfailed = (int(x) for x in row.split("|"))
        result.update({"in_catalog": n, "bytes": size, "dump_seconds_sum": ms / 1000.0,
                       "failed_in_catalog": nfailed})
    if proc.returncode != 0 or failed or result.get("in_catalog") != count:
        say(f"  !! daemon round: exit {proc.returncode}, {failed} failed,"
            f" {result.get('in_catalog')} of {count} in the catalog; tenantctl said:\n"
            + "\n".join(output.splitlines()[-15:]))
    return result


def phase_backups(args, d, ctl, dbs):
    rounds = []
    plain_dir = os.path.join(args.work, "plain")
    for r in range(args.rounds):
        loop = plain_loop(args, dbs, plain_dir)
        say(f"  round {r + 1}: pg_dump loop (xargs -P{args.concurrency}): {loop['seconds']:.2f} s,"
            f" {loop['files']} files, {mb(loop['bytes'])}")
        time.sleep(2)
        dr = daemon_round(args, d, ctl, len(dbs))
        ms = dr["metrics_seconds"]
        say(f"  round {r + 1}: daemon (tenantctl backup --all --wait): {dr['cli_seconds']:.2f} s"
            f" (all {len(dbs)} counted on /metrics after "
            f"{(f'{ms:.2f} s' if ms is not None else 'never')}); exit {dr['exit']},"
            f" {dr.get('in_catalog')} in the catalog, {mb(dr.get('bytes', 0))},"
            f" sum of per-backup durations {dr.get('dump_seconds_sum', 0):.1f} s")
        rounds.append({"loop": loop, "daemon": dr})
        d.wait_idle(quiet=1.0)
        time.sleep(2)
    return rounds


# --- Phase 2: edits -> Ready ----------------------------------------------------------------------

def poll_ready(d, name, gen0, poll):
    deadline = time.monotonic() + 120
    while True:
        w = d.workspace(name)
        now = time.monotonic()
        if w is not None and w[0] > gen0 and w[1] == w[0] and w[2] == "Ready":
            return now
        if now > deadline:
            raise RuntimeError(f"{name} not Ready at a generation above {gen0} after 120 s: {w}")
        time.sleep(poll)


def edit_once(args, d, fleet, tmpdir, name):
    gen0 = d.workspace(name)[0]
    target = os.path.join(fleet, "workspaces", name + ".yaml")
    with open(target) as f:
        limit = int(re.search(r"connectionLimit: (\d+)", f.read()).group(1))
    tmp = os.path.join(tmpdir, name + ".yaml.tmp")
    with open(tmp, "w") as f:
        f.write(workspace_doc(name, limit + 1))
    t0 = time.monotonic()
    os.rename(tmp, target)
    t1 = poll_ready(d, name, gen0, args.poll)
    return t0, t1


def phase_edits(args, d, fleet, tmpdir, first, label, inside=None):
    """CHANGES edits, each timed to Ready; `inside(t0, t1)` says whether it counts."""
    rows = []
    k = first
    attempts = 0
    while len(rows) < args.changes:
        attempts += 1
        if attempts > args.changes * 5:
            raise RuntimeError(f"{label}: only {len(rows)} edits inside a backup round")
        name = ws_name(1 + (k * 37) % args.count)
        k += 1
        t0, t1 = edit_once(args, d, fleet, tmpdir, name)
        counted = inside is None or inside(t0, t1)
        say(f"  {label} {name}: Ready after {fmt_ms(t1 - t0)}"
            + ("" if counted else " (not inside a backup round: not counted)"))
        if counted:
            rows.append({"name": name, "seconds": t1 - t0})
        time.sleep(0.3)
    return rows, k


class BackgroundRounds:
    """Rounds of `tenantctl backup --all --wait`, back to back, until stopped."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.intervals = []  # (start, end) monotonic
        self.current = None
        self.exits = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop_flag.is_set():
            start = time.monotonic()
            self.current = start
            rc, _, _ = self.ctl.run(["backup", "--all", "--wait", "--timeout", "60m"],
                                    "tenantctl-backup-busy.log")
            self.intervals.append((start, time.monotonic()))
            self.exits.append(rc)
            self.current = None

    def inside(self, t0, t1):
        # Queueing takes a moment: the round counts from 1 s after its start.
        if self.current is not None and t0 >= self.current + 1.0:
            return True  # still running when Ready was seen
        return any(s + 1.0 <= t0 and t1 <= e for s, e in self.intervals)

    def stop(self):
        self.stop_flag.set()
        self.thread.join()


def summary(rows):
    v = [r["seconds"] for r in rows]
    return {"n": len(v), "p50": statistics.median(v), "p99": pct(v, 99), "max": max(v),
            "min": min(v)}


# --- Phase 3: the big restore --------------------------------------------------------------------

def timed_restore(ctl, args, backup_id):
    """tenantctl restore BIG --backup ID --wait; each output line with its time. Its output goes
    to a pseudo-terminal: into a pipe, its stdout is block-buffered and every line arrives at
    the end."""
    log = os.path.join(args.work, "tenantctl-restore.log")
    lines = []
    master, slave = pty.openpty()
    t0 = time.monotonic()
    proc = subprocess.Popen([ctl.path, "restore", BIG, "--backup", backup_id, "--wait",
                             "--timeout", "60m"], stdout=slave, stderr=slave, env=ctl.env)
    os.close(slave)
    with open(log, "a") as out, os.fdopen(master, "rb", buffering=0) as tty:
        pending = b""
        while True:
            try:
                chunk = tty.read(4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                at = time.monotonic() - t0
                line = raw.decode(errors="replace").rstrip("\r")
                lines.append((at, line))
                out.write(f"{at:8.2f} {line}\n")
                say(f"    {at:7.2f} s  {line}")
    rc = proc.wait()
    return rc, time.monotonic() - t0, lines


def phase_restore(args, d, ctl, fleet):
    res = {}
    with open(os.path.join(fleet, "workspaces", BIG + ".yaml"), "w") as f:
        f.write(workspace_doc(BIG))
    d.wait_ready(BIG)
    (db, owner) = identities([BIG])[BIG]
    t0 = time.monotonic()
    rows = fill([(db, owner)], args.big_mb)
    res["fill_seconds"] = time.monotonic() - t0
    res["rows"] = rows
    res["data_bytes"], res["db_bytes"] = sizes([(db, owner)])
    say(f"  {BIG} (database {db}): {rows} rows, bench_rows {mb(res['data_bytes'])}, database"
        f" {mb(res['db_bytes'])}, loaded in {res['fill_seconds']:.1f} s")
    d.wait_idle(quiet=1.0)

    subprocess.run(["sync"])
    rc, seconds, output = ctl.run(["backup", BIG, "--wait", "--timeout", "60m"],
                                  "tenantctl-backup-big.log")
    m = QUEUED_RE.search(output)
    if rc != 0 or not m:
        raise RuntimeError(f"tenantctl backup {BIG} --wait: exit {rc}: {output.strip()}")
    backup_id = m.group(2)
    item = next(i for i in d.catalog(BIG)["items"] if i["id"] == backup_id)
    path = os.path.join(args.work, "backups", item["file"])
    res["backup"] = {"id": backup_id, "seconds": seconds, "bytes": item["sizeBytes"],
                     "dump_seconds": item["durationSeconds"]}
    say(f"  daemon backup {backup_id}: {seconds:.2f} s by tenantctl --wait (the runner's"
        f" {item['durationSeconds']:.2f} s), {mb(item['sizeBytes'])}")

    plain = os.path.join(args.work, "plain-big.dump")
    subprocess.run(["sync"])
    t0 = time.monotonic()
    done = subprocess.run([os.path.join(args.pg_bin, "pg_dump"), "--format=custom", "-f", plain,
                           db], capture_output=True, text=True)
    res["plain_dump_seconds"] = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump {db}: {done.stderr[:2000]}")
    res["plain_dump_bytes"] = os.path.getsize(plain)
    os.remove(plain)
    say(f"  plain pg_dump of the same database: {res['plain_dump_seconds']:.2f} s,"
        f" {mb(res['plain_dump_bytes'])} (what the restore's safety backup costs at least)")
    d.wait_idle(quiet=1.0)

    say(f"  tenantctl restore {BIG} --backup {backup_id} --wait:")
    subprocess.run(["sync"])
    rc, seconds, lines = timed_restore(ctl, args, backup_id)
    res["daemon_restore"] = {"exit": rc, "seconds": seconds, "lines": lines}
    if rc != 0:
        say(f"  !! tenantctl restore exited {rc}")
    step_ms = None
    for _, line in lines:
        # "resume: restored in 15.2 s; ..." or "done: ... restored into database "x" in 15.2 s; ..."
        m = re.search(r"restored (?:into database \S+ )?in ([\d.]+) s", line)
        if m:
            step_ms = float(m.group(1))
    res["daemon_restore"]["pg_restore_seconds"] = step_ms
    steps = {}
    for at, line in lines:
        m = re.match(r"restore \S+: ([a-z-]+): ", line)
        if m and m.group(1) not in steps:
            steps[m.group(1)] = at
    res["daemon_restore"]["steps"] = steps
    say("  steps first seen by tenantctl (it polls every 0.5 s): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    safety = None
    for _, line in lines:
        m = re.search(r"\(safety backup (\S+)\)$", line)
        if m:
            safety = m.group(1)
    for item in d.catalog(BIG)["items"] if safety else []:
        if item["id"] == safety:
            res["daemon_restore"]["safety_seconds"] = item["durationSeconds"]
    say(f"  the restore's safety backup {safety}: the runner's"
        f" {res['daemon_restore'].get('safety_seconds')} s; its pg_restore: {step_ms} s")
    count = int(psql("SELECT count(*) FROM bench_rows", db=db)[0])
    res["rows_after_daemon_restore"] = count
    say(f"  rows in bench_rows after the daemon's restore: {count} (loaded: {rows})")
    d.wait_idle(quiet=1.0)

    subprocess.run(["sync"])
    t0 = time.monotonic()
    done = subprocess.run([os.path.join(args.pg_bin, "pg_restore"), "--clean", "--if-exists",
                           "--no-owner", "--single-transaction", "-d", db, path],
                          capture_output=True, text=True)
    res["plain_restore_seconds"] = time.monotonic() - t0
    res["plain_restore_exit"] = done.returncode
    if done.returncode != 0:
        say(f"  !! plain pg_restore exited {done.returncode}: {done.stderr.strip()[:1500]}")
    count = int(psql("SELECT count(*) FROM bench_rows", db=db)[0])
    say(f"  plain pg_restore --clean --if-exists --no-owner --single-transaction of the same file:"
        f" {res['plain_restore_seconds']:.2f} s (rows after: {count})")
    return res


# --- Main ------------------------------------------------------------------------------------------

def main():
    ap = latency_common.arg_parser()
    ap.add_argument("--tenantctl", required=True)
    ap.add_argument("--pg-bin", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--big-mb", type=float, default=500)
    ap.add_argument("--small-mb", type=float, default=2.5)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--poll", type=float, default=0.005)
    args = ap.parse_args()

    work = args.work
    fleet = os.path.join(work, "fleet")
    tmpdir = os.path.join(work, "tmp")
    os.makedirs(tmpdir)
    names = [ws_name(i) for i in range(1, args.count + 1)]
    latency_common.make_fleet(args.root, fleet, names)
    token = "bench-admin-" + os.urandom(16).hex()
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(config_head(work, token_env="TM_API_TOKEN"))
        f.write(f"backups: {{directory: {work}/backups, concurrency: {args.concurrency},"
                " verify: list}\n")
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
    env = dict(os.environ, TM_API_TOKEN=token)
    results = {"count": args.count, "small_mb": args.small_mb, "big_mb": args.big_mb,
               "changes": args.changes, "rounds": args.rounds, "concurrency": args.concurrency}
    d = None
    try:
        say(f"== {args.count} shared workspaces converged by the daemon ==")
        t0 = time.monotonic()
        d = Daemon(args, config, os.path.join(work, "daemon.log"), env,
                   os.path.join(work, "state"), token)
        ctl = Ctl(args.tenantctl, d.port, token, work)
        d.wait_successes(args.count, timeout=3600)
        d.wait_idle(quiet=2.0)
        say(f"  Ready after {time.monotonic() - t0:.1f} s")
        ids = identities(names)
        dbs = [ids[n] for n in names]
        t0 = time.monotonic()
        rows = fill(dbs, args.small_mb)
        data, total = sizes(dbs)
        results["small"] = {"rows": rows, "data_bytes": data, "db_bytes": total}
        say(f"  filled: {rows} rows each in {time.monotonic() - t0:.1f} s; bench_rows"
            f" {mb(data / len(dbs))} per database (database {mb(total / len(dbs))})")
        d.wait_idle(quiet=1.0)

        say(f"\n== 1. backups of {args.count} databases, concurrency {args.concurrency},"
            f" {args.rounds} interleaved rounds ==")
        results["backups"] = phase_backups(args, d, ctl, dbs)

        say(f"\n== 2. manifest edit -> Ready, {args.changes} edits idle, then {args.changes}"
            " while backups run ==")
        idle, k = phase_edits(args, d, fleet, tmpdir, 0, "idle")
        d.wait_idle(quiet=1.0)
        bg = BackgroundRounds(ctl)
        bg.thread.start()
        time.sleep(2.0)
        try:
            busy, k = phase_edits(args, d, fleet, tmpdir, k, "busy", inside=bg.inside)
        finally:
            say("  waiting for the current backup round to end ...")
            bg.stop()
        results["edits"] = {"idle": idle, "busy": busy, "busy_rounds": len(bg.intervals),
                            "busy_exits": bg.exits}
        d.wait_idle(quiet=1.0)

        say(f"\n== 3. restore of one tenant of {args.big_mb:g} MB ==")
        results["restore"] = phase_restore(args, d, ctl, fleet)
    finally:
        if d is not None:
            d.stop()
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    report(results)


def report(r):
    say("\n== summary ==")
    b = r["backups"]
    loop = [x["loop"]["seconds"] for x in b]
    cli = [x["daemon"]["cli_seconds"] for x in b]
    met = [x["daemon"]["metrics_seconds"] for x in b if x["daemon"]["metrics_seconds"] is not None]
    say(f"backups of {r['count']} databases ({mb(r['small']['data_bytes'] / r['count'])} of rows,"
        f" {mb(r['small']['db_bytes'] / r['count'])} database each), concurrency"
        f" {r['concurrency']}, verify: list:")
    say(f"  pg_dump loop (xargs -P{r['concurrency']}): rounds "
        + ", ".join(f"{x:.2f} s" for x in loop) + f"; best {min(loop):.2f} s")
    say("  daemon, tenantctl backup --all --wait: rounds " + ", ".join(f"{x:.2f} s" for x in cli)
        + f"; best {min(cli):.2f} s -> {min(cli) / min(loop):.2f}x the loop")
    say("  round by round (each daemon round right after its loop): "
        + ", ".join(f"{c / l:.2f}x" for c, l in zip(cli, loop)))
    if met:
        say("  daemon, all counted on /metrics: rounds " + ", ".join(f"{x:.2f} s" for x in met)
            + f"; best {min(met):.2f} s -> {min(met) / min(loop):.2f}x the loop"
            f" (goal: not slower than the loop: {'met' if min(met) <= min(loop) else 'not met'})")
    per = [x["daemon"].get("dump_seconds_sum", 0) / r["count"] for x in b]
    say("  daemon, mean time of one backup in the runner (catalog duration_ms): "
        + ", ".join(f"{x * 1000:.0f} ms" for x in per)
        + f"; the loop's wall time x {r['concurrency']} / {r['count']}: "
        + ", ".join(f"{x * r['concurrency'] / r['count'] * 1000:.0f} ms" for x in loop))
    e = r["edits"]
    si, sb = summary(e["idle"]), summary(e["busy"])
    say(f"edit -> Ready ({si['n']} idle, {sb['n']} during backups):")
    say(f"  idle:            p50 {fmt_ms(si['p50'])}, p99 {fmt_ms(si['p99'])} (min"
        f" {fmt_ms(si['min'])})")
    say(f"  during backups:  p50 {fmt_ms(sb['p50'])}, p99 {fmt_ms(sb['p99'])} (min"
        f" {fmt_ms(sb['min'])}) -> p50 {sb['p50'] / si['p50']:.2f}x, p99"
        f" {sb['p99'] / si['p99']:.2f}x idle (goal: within 1.2x:"
        f" {'met' if max(sb['p50'] / si['p50'], sb['p99'] / si['p99']) <= 1.2 else 'not met'})")
    x = r["restore"]
    dr = x["daemon_restore"]
    base = x["plain_restore_seconds"]
    say(f"restore of {BIG} ({mb(x['db_bytes'])} database, {mb(x['data_bytes'])} of rows, backup"
        f" file {mb(x['backup']['bytes'])}):")
    say(f"  tenantctl restore --wait: {dr['seconds']:.2f} s (exit {dr['exit']}; of which the safety"
        f" backup {dr.get('safety_seconds')} s, the pg_restore step {dr['pg_restore_seconds']} s)")
    say(f"  plain pg_restore: {base:.2f} s -> {dr['seconds'] / base:.2f}x; goal at most 1.2x + 5 s"
        f" = {1.2 * base + 5:.2f} s: {'met' if dr['seconds'] <= 1.2 * base + 5 else 'not met'}")
    say(f"  (for reference: the daemon's backup of it {x['backup']['seconds']:.2f} s, a plain"
        f" pg_dump {x['plain_dump_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
