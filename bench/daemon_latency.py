#!/usr/bin/env python3
"""The daemon half of bench/daemon_latency.sh (issue 3): run by that script, which starts and
stops the private PostgreSQL and exports its PG* variables, TM_PG_DSN and TM_MASTER_KEY.

Phases, all against one PostgreSQL and one fleet of COUNT shared workspaces (one file each):
  1. cold converge by the daemon (directory source), then its RSS and 30 s of idle CPU;
  2. directory latency: CHANGES atomic manifest edits, each timed to Ready at the new generation;
  3. no-op resync: the daemon restarted on the converged fleet, from its "store: N workspaces"
     line to N successful reconciles, with the statements sent meanwhile; `--once` as baseline;
  4. git latency: a daemon on a local bare repository (its own store database), CHANGES commits
     pushed and announced by a signed GitHub-style webhook, each timed to Ready.

After phases 2, 3 and 4, a few extra changes (not in the figures) run with the server's
statement log on, to time each step of the path from the statements the daemon sends.

HTTP requests go over a new connection each (see Daemon.request in bench/latency_common.py for
why).

Every daemon it starts is stopped on the way out (SIGTERM, then SIGKILL); their pids are also
listed in WORK/daemon.pids for the shell script's trap.
"""
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # importing latency_common leaves no bench/__pycache__
import latency_common  # noqa: E402
from latency_common import config_head, say, workspace_doc  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SUCCESS_RE = re.compile(rb'^tenant_master_reconcile_total\{result="success"\} (\S+)$', re.M)
DEPTH_RE = re.compile(rb"^tenant_master_workqueue_depth (\S+)$", re.M)
STORE_LINE_RE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) \S+ store: (\d+) workspaces, (\d+) being deleted")
LOG_TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) ")


def log_time(text):
    """Wall-clock seconds of a daemon log timestamp (local time, millisecond precision)."""
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + int(text[20:23]) / 1000.0


def pct(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100.0 * len(ordered)) - 1)]


# --- PostgreSQL: one persistent psql session, so a snapshot runs within a millisecond ----------

class Psql:
    MARK = "__bench_done__"

    def __init__(self):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=0", "-d", "postgres"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1)

    def query(self, sql):
        self.proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo " + self.MARK + "\n")
        self.proc.stdin.flush()
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("psql ended")
            line = line.rstrip("\n")
            if line == self.MARK:
                return rows
            if line.startswith("ERROR") or line.startswith("psql:"):
                raise RuntimeError(line)
            rows.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


# Our own statements are all about pg_stat_statements (resets and snapshots): leave them out.
STATS_SQL = ("SELECT s.queryid, d.datname, s.calls, regexp_replace(left(s.query, 90), '\\s+', ' ', 'g')"
             " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
             " WHERE s.query NOT LIKE '%pg_stat_statements%'")


class Statements:
    """pg_stat_statements snapshots; deltas by statement and by database."""

    def __init__(self, psql):
        self.psql = psql

    def reset(self):
        self.psql.query("SELECT pg_stat_statements_reset()")

    def snapshot(self):
        out = {}
        for row in self.psql.query(STATS_SQL):
            queryid, db, calls, text = row.split("|", 3)
            key = (queryid, db)
            prev = out.get(key, (0, text))
            out[key] = (prev[0] + int(calls), text)
        return out

    @staticmethod
    def delta(before, after):
        out = {}
        for key, (calls, text) in after.items():
            d = calls - before.get(key, (0, ""))[0]
            if d:
                out[key] = (d, text)
        return out

    @staticmethod
    def by_db(delta):
        out = {}
        for (_, db), (calls, _) in delta.items():
            out[db] = out.get(db, 0) + calls
        return out


# --- The daemon -----------------------------------------------------------------------------------

class Daemon(latency_common.Daemon):
    """The daemon with what the phases read: /metrics, its log since its start, /proc."""

    def __init__(self, args, config, log, env, state_dir):
        self.log_offset = os.path.getsize(log) if os.path.exists(log) else 0
        self.t_start_wall = time.time()
        self.t_start = time.monotonic()
        super().__init__(args.operator, config, log, env, state_dir,
                         os.path.join(args.work, "daemon.pids"))

    def metrics(self):
        _, data = self.get("/metrics")
        m = SUCCESS_RE.search(data)
        d = DEPTH_RE.search(data)
        return (int(float(m.group(1))) if m else 0), (float(d.group(1)) if d else -1)

    def wait_successes(self, count, timeout, interval=0.5):
        deadline = time.monotonic() + timeout
        while True:
            ok, _ = self.metrics()
            if ok >= count:
                return time.monotonic()
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ok}/{count} successful reconciles after {timeout} s")
            time.sleep(interval)

    def wait_idle(self, quiet=2.0, timeout=120):
        """Until the queue is empty and no reconcile happened for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            ok, depth = self.metrics()
            if (ok, depth) != last:
                last, since = (ok, depth), time.monotonic()
            elif depth == 0 and time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def proc_status(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
        return out

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


# --- Fleet and configs ----------------------------------------------------------------------------

def ws_name(i):
    return f"bench-{i:04d}"


def write_configs(work):
    dir_config = os.path.join(work, "dir.config.yaml")
    with open(dir_config, "w") as f:
        f.write(config_head(work))
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
    git_config = os.path.join(work, "git.config.yaml")
    with open(git_config, "w") as f:
        f.write(config_head(work))
        f.write("store: {dsnEnv: TM_STORE_DSN}\n")
        f.write(f"sources: [{{name: bench-git, git: {{url: 'file://{work}/fleet.git', branch: main,"
                " path: fleet, interval: 1h, webhookSecretEnv: TM_WEBHOOK_SECRET}}]\n")
    return dir_config, git_config


# --- Phases ---------------------------------------------------------------------------------------

def poll_ready(daemon, name, gen0, poll):
    """Polls until `name` is Ready at a generation above gen0. Returns (t_generation_seen,
    t_ready, generation, uncertainty): times are monotonic, taken when the answer arrived;
    uncertainty is the time since the previous answer (Ready happened in between)."""
    t_gen = None
    deadline = time.monotonic() + 60
    previous = time.monotonic()
    while True:
        w = daemon.workspace(name)
        now = time.monotonic()
        if w is not None:
            gen, observed, phase = w
            if gen > gen0 and t_gen is None:
                t_gen = now
            if gen > gen0 and observed == gen and phase == "Ready":
                # Ready happened after the previous answer and before this one.
                return t_gen, now, gen, now - previous
        previous = now
        if now > deadline:
            raise RuntimeError(f"{name} not Ready at a generation above {gen0} after 60 s: {w}")
        time.sleep(poll)


def event_time(daemon, name, after_wall):
    """Wall time of the first event line the daemon logged for `name` after `after_wall`."""
    needle = f" workspace {name}: "
    found = None
    with open(daemon.log, errors="replace") as f:
        f.seek(daemon.log_offset)
        for line in f:
            if needle in line:
                m = LOG_TS_RE.match(line)
                if m:
                    t = log_time(m.group(1))
                    if t >= after_wall - 0.002:  # the log has millisecond precision
                        found = t
                        break
    return found


# --- Where the time goes: the server's statement log during a few extra changes -------------------

# (step, database, pattern on the statement, "first" or "last" match in the window). Times are
# when the server finished the statement; the window runs from the change to Ready.
UPSERT = "INSERT INTO tm_workspaces"
DIR_STEPS = [
    ("first spec upsert (UpsertSpec)", "tenant_master", UPSERT, "first"),
    ("last spec upsert", "tenant_master", UPSERT, "last"),
    ("source listed (ListWorkspaces)", "tenant_master", "FROM tm_workspaces WHERE source =", "first"),
    ("source status (PutSourceStatus)", "tenant_master", "INSERT INTO tm_sources", "first"),
    ("catalog observed", "postgres", "AS kind", "first"),
    ("ALTER applied", "postgres", "ALTER ", "first"),
    ("event stored", "tenant_master", "INSERT INTO tm_events", "first"),
    ("status stored (PutStatus)", "tenant_master", "INSERT INTO tm_workspace_status", "first"),
]
GIT_STEPS = [("delivery recorded", "tm_bench_git", "INSERT INTO tm_webhook_deliveries", "first")] + [
    (label, "tm_bench_git" if db == "tenant_master" else db, pattern, which)
    for label, db, pattern, which in DIR_STEPS]
RESYNC_STEPS = [
    ("first spec upsert (UpsertSpec)", "tenant_master", UPSERT, "first"),
    ("last spec upsert", "tenant_master", UPSERT, "last"),
    ("source listed (ListWorkspaces)", "tenant_master", "FROM tm_workspaces WHERE source =", "first"),
    ("source status (PutSourceStatus)", "tenant_master", "INSERT INTO tm_sources", "first"),
    ("catalog observed", "postgres", "AS kind", "first"),
]


class StatementLog:
    """log_min_duration_statement = 0 while inside; then the csvlog lines written meanwhile."""

    def __init__(self, psql, path):
        self.psql, self.path, self.lines = psql, path, []

    def __enter__(self):
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        self.psql.query("ALTER SYSTEM SET log_min_duration_statement = 0")
        self.psql.query("SELECT pg_reload_conf()")
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.psql.query("ALTER SYSTEM RESET log_min_duration_statement")
        self.psql.query("SELECT pg_reload_conf()")
        time.sleep(0.5)
        import csv
        import datetime
        with open(self.path, newline="", errors="replace") as f:
            f.seek(self.offset)
            for row in csv.reader(f):
                if len(row) < 14:
                    continue
                m = re.match(r"duration: ([\d.]+) ms\s+(?:execute [^:]*|statement): (.*)", row[13],
                             re.S)
                if not m:
                    continue
                at = datetime.datetime.strptime(row[0][:23], "%Y-%m-%d %H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                self.lines.append((at, row[2], float(m.group(1)), m.group(2)))
        return False


def explain(slog, rows, steps, quiet=False):
    """Per step: median time from the change (rename, webhook, "store:" line) to the end of the
    step's statement, the statement's own median duration, and how many such statements the
    window held (median)."""
    table = {label: ([], [], []) for label, _, _, _ in steps}
    for row in rows:
        start, end = row["wall"], row["wall_ready"] + 0.05
        window = [x for x in slog.lines if start - 0.002 <= x[0] <= end]
        for label, db, pattern, which in steps:
            hits = [x for x in window if x[1] == db and pattern in x[3] and (
                label != "ALTER applied" or row["name"].replace("-", "_") in x[3])]
            if hits:
                at, _, ms, _ = hits[0] if which == "first" else hits[-1]
                table[label][0].append(at - start)
                table[label][1].append(ms / 1000.0)
                table[label][2].append(len(hits))
    ready = [r["wall_ready"] - r["wall"] for r in rows]
    out = []
    for label, _, _, _ in steps:
        offsets, durations, counts = table[label]
        if offsets:
            out.append((label, statistics.median(offsets), statistics.median(durations),
                        statistics.median(counts)))
            say(f"    {label:34} done after {fmt_ms(out[-1][1]):>7} (that statement"
                f" {out[-1][2] * 1000:.1f} ms; such statements in the window:"
                f" {out[-1][3]:.0f}; seen in {len(offsets)}/{len(rows)})")
        else:
            say(f"    {label:34} not seen")
    say(f"    {'Ready seen by the poller':34} after {fmt_ms(statistics.median(ready)):>7}")
    return {"steps": out, "ready": statistics.median(ready)}


def summarize(values):
    return {"p50": statistics.median(values), "p90": pct(values, 90), "max": max(values),
            "min": min(values)}


def fmt_ms(s):
    return f"{s * 1000:.0f} ms"


def phase_directory(args, daemon, fleet, tmpdir, changes, first=0):
    rows = []
    for k in range(first, first + changes):
        name = ws_name(1 + (k * 50) % args.count)
        w = daemon.workspace(name)
        gen0 = w[0]
        target = os.path.join(fleet, "workspaces", name + ".yaml")
        tmp = os.path.join(tmpdir, name + ".yaml.tmp")  # same file system, outside the tree
        with open(target) as f:
            limit = int(re.search(r"connectionLimit: (\d+)", f.read()).group(1))
        with open(tmp, "w") as f:
            f.write(workspace_doc(name, limit + 1))
        t_wall = time.time()
        t0 = time.monotonic()
        os.rename(tmp, target)
        t_gen, t_ready, gen, slack = poll_ready(daemon, name, gen0, args.poll)
        t_event = event_time(daemon, name, t_wall)
        rows.append({"name": name, "generation": gen, "total": t_ready - t0, "slack": slack,
                     "wall": t_wall, "wall_ready": t_wall + (t_ready - t0),
                     "to_generation": t_gen - t0,
                     "to_event": (t_event - t_wall) if t_event else None})
        say(f"  {name} gen {gen0}->{gen}: Ready after {fmt_ms(t_ready - t0)}"
            f" (previous poll answer {fmt_ms(slack)} before; stored generation seen after"
            f" {fmt_ms(t_gen - t0)}"
            + (f", action logged after {fmt_ms(t_event - t_wall)}" if t_event else "") + ")")
        time.sleep(0.3)
    return rows


def phase_resync(args, daemon_factory, stats, runs):
    results = []
    for run in range(runs):
        stats.reset()
        daemon = daemon_factory()
        try:
            # Wait for the "store:" line (the term starts), snapshot at once, then poll /metrics.
            start_wall = None
            offset = daemon.log_offset
            deadline = time.monotonic() + 60
            while start_wall is None:
                with open(daemon.log, errors="replace") as f:
                    f.seek(offset)
                    chunk = f.read()
                for line in chunk.splitlines():
                    m = STORE_LINE_RE.match(line)
                    if m:
                        start_wall = log_time(m.group(1))
                        stored = int(m.group(2))
                if start_wall is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no 'store:' line within 60 s")
                    time.sleep(0.001)
            before = stats.snapshot()
            t_snap = time.time()
            while True:
                ok, _ = daemon.metrics()
                if ok >= args.count:
                    end_wall = time.time()
                    break
                if time.time() - start_wall > 120:
                    raise RuntimeError(f"only {ok} successes after 120 s")
                time.sleep(0.002)
            after = stats.snapshot()
            delta = Statements.delta(before, after)
            total_since_start = sum(c for c, _ in Statements.delta({}, after).values())
            window = sum(c for c, _ in delta.values())
            daemon.wait_idle(quiet=1.0)
            late = Statements.delta(after, stats.snapshot())
            res = {"seconds": end_wall - start_wall, "stored": stored, "name": "",
                   "wall": start_wall, "wall_ready": end_wall,
                   "snapshot_lag": t_snap - start_wall, "statements": window,
                   "by_db": Statements.by_db(delta), "since_start": total_since_start,
                   "after_done": sum(c for c, _ in late.values()),
                   "top": sorted(((c, db, t) for (_, db), (c, t) in delta.items()), reverse=True)[:6],
                   "status": daemon.proc_status()}
            results.append(res)
            say(f"  run {run + 1}: store: {stored} workspaces -> {args.count} successes in"
                f" {res['seconds']:.3f} s; statements in that window: {window} ({res['by_db']}),"
                f" {total_since_start} since the process started, {res['after_done']} right after;"
                f" snapshot taken {fmt_ms(res['snapshot_lag'])} after the line")
        finally:
            daemon.stop()
    return results


def phase_once(args, dir_config, env, stats, runs):
    results = []
    for run in range(runs):
        stats.reset()
        t0 = time.monotonic()
        out = subprocess.run([args.operator, "--config", dir_config, "--once"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t1 = time.monotonic()
        delta = Statements.delta({}, stats.snapshot())
        uptodate = sum(1 for line in out.stdout.splitlines() if " UpToDate " in line)
        if out.returncode != 0:
            say(out.stdout[-2000:])
            raise RuntimeError(f"--once exited {out.returncode}")
        results.append({"seconds": t1 - t0, "statements": sum(c for c, _ in delta.values()),
                        "by_db": Statements.by_db(delta), "uptodate": uptodate})
        say(f"  --once run {run + 1}: {t1 - t0:.3f} s, {results[-1]['statements']} statements"
            f" {results[-1]['by_db']}, {uptodate} UpToDate")
    return results


GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@bench.test",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@bench.test",
               GIT_CONFIG_NOSYSTEM="1")


def git(*cmd, cwd=None):
    return subprocess.run(["git", *cmd], cwd=cwd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=GIT_ENV).stdout.strip()


def setup_git(args, fleet):
    bare = os.path.join(args.work, "fleet.git")
    wc = os.path.join(args.work, "git-wc")
    git("init", "-q", "--bare", "-b", "main", bare)
    git("init", "-q", "-b", "main", wc)
    shutil.copytree(fleet, os.path.join(wc, "fleet"))
    git("add", "-A", cwd=wc)
    git("commit", "-q", "-m", "fleet", cwd=wc)
    git("remote", "add", "origin", bare, cwd=wc)
    git("push", "-q", "origin", "main", cwd=wc)
    return wc


def phase_git(args, daemon, wc, secret, changes, first=0):
    rows = []
    for k in range(first, first + changes):
        name = ws_name(1 + (25 + k * 50) % args.count)
        gen0 = daemon.workspace(name)[0]
        path = os.path.join(wc, "fleet", "workspaces", name + ".yaml")
        with open(path) as f:
            limit = int(re.search(r"connectionLimit: (\d+)", f.read()).group(1))
        with open(path, "w") as f:
            f.write(workspace_doc(name, limit + 1))
        git("commit", "-q", "-am", f"{name}: connectionLimit {limit + 1}", cwd=wc)
        sha = git("rev-parse", "HEAD", cwd=wc)
        t_push = time.monotonic()
        git("push", "-q", "origin", "main", cwd=wc)
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        t_wall = time.time()
        t_hook = time.monotonic()
        status, answer = daemon.request("POST", "/hooks/git", body=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sig})
        if status != 202:
            raise RuntimeError(f"webhook answered {status}: {answer[:200]!r}")
        t_answer = time.monotonic()
        t_gen, t_ready, gen, slack = poll_ready(daemon, name, gen0, args.poll)
        t_event = event_time(daemon, name, t_wall)
        rows.append({"name": name, "generation": gen, "total": t_ready - t_hook, "slack": slack,
                     "wall": t_wall, "wall_ready": t_wall + (t_ready - t_hook),
                     "push_total": t_ready - t_push, "push": t_hook - t_push,
                     "hook_answer": t_answer - t_hook, "to_generation": t_gen - t_hook,
                     "to_event": (t_event - t_wall) if t_event else None})
        say(f"  {name} gen {gen0}->{gen}: webhook->Ready {fmt_ms(t_ready - t_hook)},"
            f" push+webhook->Ready {fmt_ms(t_ready - t_push)} (push {fmt_ms(t_hook - t_push)},"
            f" 202 after {fmt_ms(t_answer - t_hook)}, previous poll answer {fmt_ms(slack)} before,"
            f" stored generation after"
            f" {fmt_ms(t_gen - t_hook)}"
            + (f", action logged after {fmt_ms(t_event - t_wall)}" if t_event else "") + ")")
        time.sleep(0.3)
    return rows


def probe_http(daemon, path, n=30):
    """Round trip of GET `path`, kept-alive connection versus a new connection per request."""
    out = {}
    for mode in ("keep_alive", "new_connection"):
        times = []
        for _ in range(n):
            t = time.monotonic()
            daemon.get(path, keep_alive=(mode == "keep_alive"))
            times.append(time.monotonic() - t)
            time.sleep(0.005)
        out[mode] = (statistics.median(times), max(times))
    if daemon.conn is not None:
        daemon.conn.close()
        daemon.conn = None
    return out


def idle_cpu(daemon, stats, seconds):
    before = stats.snapshot()
    c0, t0 = daemon.cpu_ticks(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = daemon.cpu_ticks(), time.monotonic()
    delta = Statements.delta(before, stats.snapshot())
    cpu = (c1 - c0) / CLK_TCK
    return {"cpu_seconds": cpu, "percent": 100.0 * cpu / (t1 - t0), "wall": t1 - t0,
            "statements": sum(c for c, _ in delta.values()), "by_db": Statements.by_db(delta)}


def main():
    ap = latency_common.arg_parser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--resync-runs", type=int, default=3)
    ap.add_argument("--poll", type=float, default=0.005)
    ap.add_argument("--explain", type=int, default=5,
                    help="extra changes timed step by step from the server's statement log")
    args = ap.parse_args()

    work = args.work
    fleet = os.path.join(work, "fleet")
    tmpdir = os.path.join(work, "tmp")
    os.makedirs(tmpdir)
    latency_common.make_fleet(args.root, fleet, [ws_name(i) for i in range(1, args.count + 1)])
    dir_config, git_config = write_configs(work)
    state_dir = os.path.join(work, "state")
    secret = "bench-webhook-secret-" + os.urandom(8).hex()
    env = dict(os.environ)
    env["TM_WEBHOOK_SECRET"] = secret
    dsn = env["TM_PG_DSN"]
    env["TM_STORE_DSN"] = re.sub(r"dbname=\S+", "dbname=tm_bench_git", dsn)
    pg_log = os.path.join(env["TM_PG_DIR"], "data", "log", "bench.csv")
    psql = Psql()
    stats = Statements(psql)
    daemons = []
    results = {"count": args.count, "changes": args.changes}

    def start(config, log):
        d = Daemon(args, config, os.path.join(work, log), env, state_dir)
        daemons.append(d)
        return d

    try:
        say(f"== cold converge of {args.count} shared workspaces by the daemon (directory source) ==")
        d = start(dir_config, "dir-daemon.log")
        t_done = d.wait_successes(args.count, timeout=1800, interval=0.5)
        results["cold"] = t_done - d.t_start
        say(f"  {args.count} Ready after {results['cold']:.1f} s")
        d.wait_idle(quiet=3.0)
        results["rss_cold"] = d.proc_status()
        say(f"  after the converge: {results['rss_cold']}")
        say(f"  idle for {args.idle:.0f} s ...")
        results["idle"] = idle_cpu(d, stats, args.idle)
        say(f"  idle CPU: {results['idle']['cpu_seconds']:.2f} s over {results['idle']['wall']:.1f} s"
            f" = {results['idle']['percent']:.2f} % of one core; statements meanwhile:"
            f" {results['idle']['statements']} {results['idle']['by_db']}")

        results["http"] = {p: probe_http(d, p) for p in ("/healthz", "/api/v1/workspaces/" + ws_name(1))}
        for p, v in results["http"].items():
            say(f"  GET {p}: kept-alive connection p50 {fmt_ms(v['keep_alive'][0])}"
                f" (max {fmt_ms(v['keep_alive'][1])}), new connection each time p50"
                f" {fmt_ms(v['new_connection'][0])} (max {fmt_ms(v['new_connection'][1])})")

        say(f"\n== directory source: {args.changes} manifest edits (atomic rename), each to Ready ==")
        results["dir"] = phase_directory(args, d, fleet, tmpdir, args.changes)
        results["rss_after_dir"] = d.proc_status()
        say(f"  where the time goes: {args.explain} more edits with the server's statement log on"
            " (not in the figures)")
        with StatementLog(psql, pg_log) as slog:
            rows = phase_directory(args, d, fleet, tmpdir, args.explain, first=args.changes)
        results["dir_explain"] = explain(slog, rows, DIR_STEPS)
        d.stop()

        say(f"\n== no-op resync: the daemon restarted on the converged fleet ({args.resync_runs} runs) ==")
        results["resync"] = phase_resync(args, lambda: start(dir_config, "dir-daemon.log"), stats,
                                         args.resync_runs)
        say("  where the time goes: one more restart with the server's statement log on"
            " (not in the figures)")
        with StatementLog(psql, pg_log) as slog:
            extra = phase_resync(args, lambda: start(dir_config, "dir-daemon.log"), stats, 1)
        results["resync_explain"] = explain(slog, extra, RESYNC_STEPS)
        say("  baseline, same fleet, no daemon running:")
        results["once"] = phase_once(args, dir_config, env, stats, args.resync_runs)

        say(f"\n== git source: separate store (tm_bench_git), same {args.count} workspaces ==")
        wc = setup_git(args, fleet)
        g = start(git_config, "git-daemon.log")
        t_done = g.wait_successes(args.count, timeout=1800, interval=0.5)
        results["git_converge"] = t_done - g.t_start
        say(f"  {args.count} Ready (already converged databases, new store) after"
            f" {results['git_converge']:.1f} s")
        g.wait_idle(quiet=2.0)
        say(f"\n== git source: {args.changes} commits, each pushed then announced by a webhook ==")
        results["git"] = phase_git(args, g, wc, secret, args.changes)
        results["rss_git"] = g.proc_status()
        say(f"  where the time goes: {args.explain} more with the server's statement log on"
            " (not in the figures)")
        with StatementLog(psql, pg_log) as slog:
            rows = phase_git(args, g, wc, secret, args.explain, first=args.changes)
        results["git_explain"] = explain(slog, rows, GIT_STEPS)
        g.stop()
    finally:
        for d in daemons:
            try:
                d.stop()
            except Exception as e:  # keep stopping the others
                say(f"stopping daemon {d.proc.pid}: {e}")
        psql.close()
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)

    report(results)


def report(r):
    dir_total = summarize([x["total"] for x in r["dir"]])
    dir_gen = summarize([x["to_generation"] for x in r["dir"]])
    dir_ev = [x["to_event"] for x in r["dir"] if x["to_event"] is not None]
    git_total = summarize([x["total"] for x in r["git"]])
    git_push = summarize([x["push_total"] for x in r["git"]])
    git_gen = summarize([x["to_generation"] for x in r["git"]])
    git_ev = [x["to_event"] for x in r["git"] if x["to_event"] is not None]
    pushes = summarize([x["push"] for x in r["git"]])
    resync = statistics.median([x["seconds"] for x in r["resync"]])
    resync_st = statistics.median([x["statements"] for x in r["resync"]])
    once = statistics.median([x["seconds"] for x in r["once"]])
    once_st = statistics.median([x["statements"] for x in r["once"]])
    idle = r["idle"]
    rss = r["rss_cold"]

    def trio(s):
        return f"{s['p50'] * 1000:.0f} / {s['p90'] * 1000:.0f} / {s['max'] * 1000:.0f} ms"

    say("\n== summary ({} workspaces, {} changes each) ==".format(r["count"], r["changes"]))
    say(f"{'measure':58} {'result':34} target")
    lines = [
        ("directory edit -> Ready (p50 / p90 / max)", trio(dir_total), "p50 < 300 ms"),
        ("  of which: edit -> new generation stored (p50)", fmt_ms(dir_gen["p50"]), ""),
        ("  of which: edit -> action logged (p50)",
         fmt_ms(statistics.median(dir_ev)) if dir_ev else "n/a", ""),
        ("  poll answers at Ready were apart by (p50 / max)",
         f"{statistics.median(x['slack'] for x in r['dir']) * 1000:.0f} / "
         f"{max(x['slack'] for x in r['dir']) * 1000:.0f} ms", ""),
        ("git webhook -> Ready (p50 / p90 / max)", trio(git_total), "p50 < 1 s"),
        ("git push + webhook -> Ready (p50 / p90 / max)", trio(git_push), ""),
        ("  of which: git push (p50)", fmt_ms(pushes["p50"]), ""),
        ("  of which: webhook -> new generation stored (p50)", fmt_ms(git_gen["p50"]), ""),
        ("  of which: webhook -> action logged (p50)",
         fmt_ms(statistics.median(git_ev)) if git_ev else "n/a", ""),
        ("no-op resync after restart (median of runs)",
         f"{resync:.3f} s  (" + " ".join("%.3f" % x["seconds"] for x in r["resync"]) + ")", "< 0.5 s"),
        ("  statements in that window (median)",
         f"{resync_st:.0f}  {r['resync'][len(r['resync']) // 2]['by_db']}", "a handful/cluster"),
        ("tenant-operator --once, same fleet (median)",
         f"{once:.3f} s  (" + " ".join("%.3f" % x["seconds"] for x in r["once"]) + ")", "baseline"),
        ("  statements (median)", f"{once_st:.0f}  {r['once'][len(r['once']) // 2]['by_db']}", ""),
        ("daemon RSS after converging (VmRSS / VmHWM)",
         f"{rss['VmRSS'] / 1024:.1f} / {rss['VmHWM'] / 1024:.1f} MiB", "< 64 MiB"),
        ("daemon RSS after the resync restart (VmRSS / VmHWM)",
         f"{r['resync'][-1]['status']['VmRSS'] / 1024:.1f} / "
         f"{r['resync'][-1]['status']['VmHWM'] / 1024:.1f} MiB", ""),
        ("git daemon RSS (VmRSS / VmHWM)",
         f"{r['rss_git']['VmRSS'] / 1024:.1f} / {r['rss_git']['VmHWM'] / 1024:.1f} MiB", ""),
        (f"idle CPU over {idle['wall']:.0f} s",
         f"{idle['percent']:.2f} % of a core ({idle['cpu_seconds']:.2f} s)", ""),
        ("  statements while idle", f"{idle['statements']} {idle['by_db']}", ""),
        ("cold converge by the daemon", f"{r['cold']:.1f} s", ""),
    ]
    for path, v in r["http"].items():
        lines.append((f"GET {path[:28]} kept-alive / new conn (p50)",
                      f"{fmt_ms(v['keep_alive'][0])} / {fmt_ms(v['new_connection'][0])}", ""))
    for a, b, c in lines:
        say(f"{a:58} {b:34} {c}")
    say("\nratios:")
    say(f"  directory p50 / target 0.3 s          = {dir_total['p50'] / 0.3:.2f}")
    say(f"  git webhook p50 / target 1 s           = {git_total['p50']:.2f}")
    say(f"  Argo CD 3 min poll (mean wait 90 s) / git push+webhook p50 = {90 / git_push['p50']:.0f}x;"
        f" Portainer 5 min (mean 150 s) = {150 / git_push['p50']:.0f}x")
    say(f"  no-op resync / target 0.5 s            = {resync / 0.5:.2f}")
    say(f"  no-op resync / --once                  = {resync / once:.2f}")
    say(f"  resync statements / --once statements  = {resync_st:.0f} / {once_st:.0f}")
    say(f"  RSS / 64 MiB                           = {rss['VmHWM'] / 1024 / 64:.2f} (peak)")
    say("\nstatements of the last resync window, most frequent first:")
    for c, db, text in r["resync"][-1]["top"]:
        say(f"  {c:6} {db:14} {text}")


if __name__ == "__main__":
    sys.exit(main())
