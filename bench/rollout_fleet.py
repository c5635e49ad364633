#!/usr/bin/env python3
"""The daemon half of bench/rollout_fleet.sh (issue 12): run by that script, which starts and
stops the private PostgreSQL and exports its PG* variables, TM_PG_DSN and TM_MASTER_KEY.

One fleet of COUNT shared workspaces of one product (the inventory example's three migrations and
pg_trgm, as bench/daemon_latency.sh), whose `spec.rollout` has ten cumulative percent waves
(10, 20, ..., 100), no pause, `maxUnavailable` MAX_UNAVAILABLE and `failureBudget: 1`; one
daemon (4 workers, directory source) per configuration of `--backups` (`off`:
`backups.beforeMigrations: false`; `on`: the default, a pg_dump before each migration pass and
its verification by restore in the backup pool), the first one doing the cold converge:

  0. cold converge of the fleet by the daemon (not the measured figure);
  then, per configuration, ROUNDS rounds of:
  1. rollout: a no-op migration (`SELECT 1;`) renamed into the product's migrations folder; timed
     from the rename until tm_rollouts holds the new revision's rollout as Completed and every
     workspace's tm_workspace_status.product_revision is the new revision, Ready (the store
     polled with one open psql session every POLL seconds); per-wave times from the rollout's
     events (tm_events, workspace `product/bench`, RolloutWaveStarted / RolloutWaveCompleted);
  2. all at once (the baseline): `rollout` removed from the product (the file rewritten, then a
     pause so the daemon has read it), then another no-op migration renamed in; timed from the
     rename until every workspace's product_revision is the new revision, Ready.
  A round after a baseline first puts `rollout` back and waits until what that starts is over
  (see the README: it starts a rollout of the revision every workspace already has).

Also: successful passes (/metrics) and the daemon's CPU in each round, the rollout row's writes,
and the daemon's VmRSS / VmHWM after the converge and at the end of each configuration.

Every daemon it starts is stopped on the way out (SIGTERM, then SIGKILL); its pid is also
listed in WORK/daemon.pids for the shell script's trap.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # importing latency_common leaves no bench/__pycache__
import latency_common  # noqa: E402
from latency_common import config_head, say  # noqa: E402

PRODUCT_NAME = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SUCCESS_RE = re.compile(rb'^tenant_master_reconcile_total\{result="success"\} (\S+)$', re.M)
WAVE_RE = re.compile(r"^wave (\d+) of (\d+)")

PRODUCT_HEAD = """apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: bench}
spec:
  image: example/bench
  defaultVersion: "1.0.0"
  migrations: migrations
  extensions: [pg_trgm]
  modes: [shared]
"""


def product_doc(max_unavailable, with_rollout):
    if not with_rollout:
        return PRODUCT_HEAD
    waves = ", ".join(f"{{percent: {p}}}" for p in range(10, 101, 10))
    return PRODUCT_HEAD + (
        "  rollout:\n"
        f"    waves: [{waves}]\n"
        "    pauseBetweenWaves: 0s\n"
        f"    maxUnavailable: {max_unavailable}\n"
        "    failureBudget: 1\n")


def ws_name(i):
    return f"bench-{i:04d}"


class Psql:
    """One open psql session on the store's database: a poll costs one round trip."""
    MARK = "__bench_done__"

    def __init__(self, database):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=0", "-d", database],
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


# One poll: the product's newest recorded revision, the stored rollout (revision, phase, wave,
# version, stored size), and the workspaces by product revision and phase. The rollout's fields
# are read from the head of its JSON (StateToJson writes product, revision, previousRevision,
# phase, currentWave first), not by parsing the whole document: at 1000 workspaces it is
# ~150 KB, and parsing it three times a poll cost ~36 ms of server CPU every 100 ms (run 1).
POLL_SQL = """
SELECT (SELECT coalesce(max(number), 0) FROM tm_product_revisions WHERE product = 'bench'),
       coalesce((SELECT substring(h FROM '"revision":([0-9]+)') || ','
                        || substring(h FROM '"phase":"([A-Za-z]+)"') || ','
                        || substring(h FROM '"currentWave":([0-9]+)') || ',' || version || ','
                        || pg_column_size(state_json)
                 FROM (SELECT left(state_json, 200) AS h, version, state_json FROM tm_rollouts
                       WHERE product = 'bench') r), ''),
       (SELECT coalesce(string_agg(product_revision || ':' || phase || ':' || n, ' '), '')
          FROM (SELECT product_revision, phase, count(*) AS n FROM tm_workspace_status
                GROUP BY 1, 2) s)
"""


class Poll:
    def __init__(self, row):
        newest, rollout, counts = row.split("|")
        self.newest = int(newest)
        self.rollout = None
        if rollout:
            revision, phase, wave, version, size = rollout.split(",")
            self.rollout = {"revision": int(revision), "phase": phase, "wave": int(wave),
                            "version": int(version), "bytes": int(size)}
        self.counts = {}
        for item in counts.split():
            revision, phase, n = item.split(":")
            self.counts[(int(revision), phase)] = int(n)

    def at(self, revision, phase=None):
        return sum(n for (r, p), n in self.counts.items()
                   if r == revision and (phase is None or p == phase))


class Daemon(latency_common.Daemon):
    def __init__(self, args, config, log, env, state_dir):
        super().__init__(args.operator, config, log, env, state_dir,
                         os.path.join(args.work, "daemon.pids"))

    def successes(self):
        _, data = self.get("/metrics")
        m = SUCCESS_RE.search(data)
        return int(float(m.group(1))) if m else 0

    def proc_status(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_atomic(path, text, tmpdir):
    tmp = os.path.join(tmpdir, os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def wait_for(psql, daemon, done, timeout, poll, what, observe=None):
    """Polls the store until done(Poll) is true; returns (monotonic time seen, Poll). `observe`
    sees every poll with its time."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        p = Poll(psql.query(POLL_SQL)[0])
        now = time.monotonic()
        if observe is not None:
            observe(now, p)
        if done(p):
            return now, p
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {daemon.proc.returncode}; see {daemon.log}")
        if now > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f} s; last poll: "
                               f"newest revision {p.newest}, rollout {p.rollout}, "
                               f"workspaces {p.counts}")
        if last is None or now - last > 10:
            last = now
            say(f"    ... {what}: newest revision {p.newest}, rollout {p.rollout},"
                f" workspaces by (revision, phase) {p.counts}")
        time.sleep(poll)


def events_since(psql, after_id):
    rows = psql.query(
        "SELECT id, reason, extract(epoch FROM at), replace(message, '|', '/') FROM tm_events"
        f" WHERE workspace = 'product/{PRODUCT_NAME}' AND id > {after_id} ORDER BY id")
    out = []
    for row in rows:
        eid, reason, at, message = row.split("|", 3)
        out.append({"id": int(eid), "reason": reason, "at": float(at), "message": message})
    return out


def last_event_id(psql):
    return int(psql.query("SELECT coalesce(max(id), 0) FROM tm_events")[0])


def change_round(args, daemon, psql, fleet, tmpdir, seq, rollout):
    """Renames the no-op migration number `seq` into the migrations folder and waits until every
    workspace is on the revision it makes (and, with a policy, the rollout Completed)."""
    kind = "rollout" if rollout else "all at once"
    before = Poll(psql.query(POLL_SQL)[0])
    first_event = last_event_id(psql)
    ok0 = daemon.successes()
    cpu0 = daemon.cpu_seconds()
    load0 = loadavg()
    name = f"{seq:04d}_noop_{'rollout' if rollout else 'all_at_once'}.sql"
    tmp = os.path.join(tmpdir, name)
    with open(tmp, "w") as f:
        f.write("-- a migration that changes nothing (bench/rollout_fleet.py)\nSELECT 1;\n")
    t_wall = time.time()
    t0 = time.monotonic()
    os.rename(tmp, os.path.join(fleet, "migrations", name))
    t_rev, p = wait_for(psql, daemon, lambda p: p.newest > before.newest, 60, args.poll,
                        f"{kind}: new revision recorded")
    revision = p.newest

    def done(p):
        if p.at(revision, "Ready") != args.count:
            return False
        return not rollout or (p.rollout is not None and p.rollout["revision"] == revision
                               and p.rollout["phase"] == "Completed")

    first = []

    def observe(now, p):
        if not first and p.at(revision) > 0:
            first.append(now)

    t_done, p = wait_for(psql, daemon, done, args.timeout, args.poll,
                         f"{kind} of revision {revision}", observe)
    cpu1 = daemon.cpu_seconds()
    ok1 = daemon.successes()
    events = events_since(psql, first_event)
    res = {"kind": kind, "migration": name, "revision": revision, "seconds": t_done - t0,
           "revision_seen": t_rev - t0, "first_reached": first[0] - t0 if first else None,
           "passes": ok1 - ok0, "cpu": cpu1 - cpu0,
           "load_before": load0, "load_after": loadavg(), "events": events,
           "rollout": p.rollout, "rollout_before": before.rollout}
    say(f"  {kind}: revision {revision} ({name}) on all {args.count} workspaces after"
        f" {res['seconds']:.2f} s (revision recorded after {res['revision_seen']:.2f} s, the"
        f" first workspace on it after {res['first_reached']:.2f} s); {res['passes']} successful"
        f" passes; daemon CPU {res['cpu']:.1f} s; load {load0} -> {res['load_after']}")
    if rollout:
        waves = {}
        for e in events:
            if e["reason"] in ("RolloutStarted", "RolloutCompleted"):
                say(f"    {e['at'] - t_wall:7.2f} s  {e['reason']}: {e['message']}")
            m = WAVE_RE.match(e["message"])
            if m and e["reason"] in ("RolloutWaveStarted", "RolloutWaveCompleted"):
                waves.setdefault(int(m.group(1)), {})[e["reason"]] = e["at"] - t_wall
            elif e["reason"] not in ("RolloutStarted", "RolloutCompleted"):
                say(f"    {e['at'] - t_wall:7.2f} s  {e['reason']}: {e['message']}")
        res["waves"] = []
        for k in sorted(waves):
            w = waves[k]
            started, completed = w.get("RolloutWaveStarted"), w.get("RolloutWaveCompleted")
            dur = completed - started if started is not None and completed is not None else None
            res["waves"].append({"wave": k, "started": started, "completed": completed,
                                 "seconds": dur})
            say(f"    wave {k:2}: started {started if started is None else round(started, 2)} s,"
                f" completed {completed if completed is None else round(completed, 2)} s"
                + (f", {dur:.2f} s" if dur is not None else ""))
        if p.rollout and before.rollout:
            same = before.rollout["revision"] == p.rollout["revision"]
            res["rollout_writes"] = p.rollout["version"] - (0 if not same else
                                                            before.rollout["version"])
        elif p.rollout:
            res["rollout_writes"] = p.rollout["version"]
        if p.rollout:
            say(f"    tm_rollouts row: version {p.rollout['version']},"
                f" state_json stored in {p.rollout['bytes']} bytes (compressed)")
    else:
        other = [e for e in events if e["reason"].startswith("Rollout")]
        for e in other:
            say(f"    unexpected: {e['at'] - t_wall:7.2f} s  {e['reason']}: {e['message']}")
    return res


def set_policy(args, daemon, psql, fleet, tmpdir, with_rollout):
    """Rewrites the product with or without `rollout` and gives the daemon time to read it (a
    change of the policy is no revision: nothing in the store shows it was read). Putting the
    policy back after a revision went out all at once starts a rollout of the revision every
    workspace already has (see the README): waited for, so that it is not in the figures."""
    first_event = last_event_id(psql)
    ok0 = daemon.successes()
    t0 = time.monotonic()
    write_atomic(os.path.join(fleet, "product.yaml"), product_doc(args.max_unavailable, with_rollout),
                 tmpdir)
    time.sleep(args.settle)

    def settled(p):
        return (p.at(p.newest, "Ready") == args.count and
                (p.rollout is None or p.rollout["phase"] in ("Completed", "Aborted", "Superseded")))

    t_end, p = wait_for(psql, daemon, settled, args.timeout, args.poll, "product rewritten")
    events = events_since(psql, first_event)
    ok = daemon.successes() - ok0
    say(f"  product rewritten {'with' if with_rollout else 'without'} spec.rollout; settled after"
        f" {t_end - t0:.1f} s: {ok} successful passes, rollout row {p.rollout},"
        f" workspaces by (revision, phase) {p.counts}")
    for e in events:
        say(f"    event: {e['reason']}: {e['message']}")
    return {"passes": ok, "seconds": t_end - t0, "events": events, "rollout": p.rollout,
            "counts": {f"{r}:{ph}": n for (r, ph), n in p.counts.items()}}


def write_config(work, name, backups):
    """The daemon's config: 4 workers, directory stacks, the fleet as a directory source, and
    pre-migration backups on (the default: each migration pass first takes a pg_dump, then the
    pool verifies it by restoring it into a scratch database) or off."""
    config = os.path.join(work, name)
    with open(config, "w") as f:
        f.write(config_head(work))
        f.write("sources: [{name: bench, directory: ./fleet}]\n")
        if not backups:
            f.write("backups: {beforeMigrations: false}\n")
    return config


def main():
    ap = latency_common.arg_parser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--max-unavailable", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--backups", default="off,on",
                    help="pre-migration backups for each configuration measured in turn")
    ap.add_argument("--poll", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds given to the daemon to read a rewritten product.yaml")
    args = ap.parse_args()
    configs = [c.strip() for c in args.backups.split(",") if c.strip()]
    if not configs or any(c not in ("on", "off") for c in configs):
        ap.error("--backups: a list of on and off")

    work = args.work
    fleet = os.path.join(work, "fleet")
    tmpdir = os.path.join(work, "tmp")
    os.makedirs(tmpdir)
    # The layout of latency_common.make_fleet, with the rollout policy in the product.
    os.makedirs(os.path.join(fleet, "workspaces"))
    os.makedirs(os.path.join(fleet, "migrations"))
    src = os.path.join(args.root, "examples", "fleet", "migrations", "inventory")
    migrations = sorted(n for n in os.listdir(src) if n.endswith(".sql"))
    for n in migrations:
        with open(os.path.join(src, n)) as f, open(os.path.join(fleet, "migrations", n), "w") as g:
            g.write(f.read())
    with open(os.path.join(fleet, "product.yaml"), "w") as f:
        f.write(product_doc(args.max_unavailable, True))
    for i in range(1, args.count + 1):
        with open(os.path.join(fleet, "workspaces", ws_name(i) + ".yaml"), "w") as f:
            f.write(latency_common.workspace_doc(ws_name(i)))
    next_seq = int(migrations[-1][:4]) + 1

    env = dict(os.environ)
    state_dir = os.path.join(work, "state")
    log = os.path.join(work, "daemon.log")
    results = {"count": args.count, "max_unavailable": args.max_unavailable, "configs": []}
    daemon = None
    psql = None
    policy_on = True
    try:
        for index, backups in enumerate(configs):
            config = write_config(work, f"config-backups-{backups}.yaml", backups == "on")
            say(f"\n== daemon with pre-migration backups {backups} ==")
            if daemon is not None:
                daemon.stop()
            t0 = time.monotonic()
            daemon = Daemon(args, config, log, env, state_dir)
            if psql is None:
                psql = Psql("tenant_master")
            _, p = wait_for(psql, daemon,
                            lambda p: p.newest > 0 and p.at(p.newest, "Ready") == args.count,
                            3600, 0.5, "converge")
            if index == 0:
                results["cold"] = time.monotonic() - t0
                say(f"  cold converge of {args.count} shared workspaces (product with"
                    f" spec.rollout: 10 waves of 10 %, no pause, maxUnavailable"
                    f" {args.max_unavailable}, failureBudget 1): {args.count} Ready on revision"
                    f" {p.newest} after {results['cold']:.1f} s; load {loadavg()}")
                time.sleep(args.settle)
                results["rss_cold"] = daemon.proc_status()
                say(f"  daemon after the converge: {results['rss_cold']}")
            else:
                say(f"  restarted: {args.count} Ready on revision {p.newest} after"
                    f" {time.monotonic() - t0:.1f} s")
                time.sleep(args.settle)
            cfg = {"backups": backups, "rounds": []}
            for r in range(args.rounds):
                say(f"\n== backups {backups}, round {r + 1}: a no-op migration rolled out,"
                    " then one all at once ==")
                rnd = {}
                if not policy_on:
                    rnd["policy_back"] = set_policy(args, daemon, psql, fleet, tmpdir, True)
                    policy_on = True
                rnd["rollout"] = change_round(args, daemon, psql, fleet, tmpdir, next_seq, True)
                next_seq += 1
                time.sleep(args.settle)
                rnd["policy_off"] = set_policy(args, daemon, psql, fleet, tmpdir, False)
                policy_on = False
                rnd["all_at_once"] = change_round(args, daemon, psql, fleet, tmpdir, next_seq,
                                                  False)
                next_seq += 1
                time.sleep(args.settle)
                cfg["rounds"].append(rnd)
            cfg["rss_end"] = daemon.proc_status()
            say(f"\n  daemon at the end: {cfg['rss_end']}")
            results["configs"].append(cfg)
    finally:
        if psql is not None:
            psql.close()
        if daemon is not None:
            daemon.stop()
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    report(results)


def report(r):
    say(f"\n== summary ({r['count']} workspaces, waves of 10 %, no pause, maxUnavailable"
        f" {r['max_unavailable']}, failureBudget 1, 4 workers) ==")
    say(f"cold converge (not the figure): {r['cold']:.1f} s; daemon VmRSS after it"
        f" {r['rss_cold']['VmRSS'] / 1024:.1f} MiB")
    for cfg in r["configs"]:
        for k, rnd in enumerate(cfg["rounds"]):
            ro, base = rnd["rollout"], rnd["all_at_once"]
            waves = [w["seconds"] for w in ro.get("waves", []) if w["seconds"] is not None]
            say(f"pre-migration backups {cfg['backups']}, round {k + 1}:")
            if "policy_back" in rnd:
                pb = rnd["policy_back"]
                started = [e for e in pb["events"] if e["reason"] == "RolloutStarted"]
                say(f"  (policy put back: settled after {pb['seconds']:.1f} s, {pb['passes']}"
                    f" passes" + (f"; it started a rollout: {started[0]['message']}" if started
                                  else "") + ")")
            say(f"  rollout, rename -> Completed and all on it: {ro['seconds']:.2f} s"
                f"  (goal 60 s: {ro['seconds'] / 60:.2f} of it); first workspace on it after"
                f" {ro['first_reached']:.2f} s; {ro['passes']} passes, daemon CPU"
                f" {ro['cpu']:.1f} s, {ro.get('rollout_writes', '?')} rollout row writes;"
                f" load {ro['load_before']} -> {ro['load_after']}")
            if waves:
                say("    waves: " + " ".join(f"{w:.2f}" for w in waves) + " s"
                    f" (median {sorted(waves)[len(waves) // 2]:.2f}; the first starts"
                    f" {ro['waves'][0]['started']:.2f} s after the rename)")
            say(f"  all at once (baseline): {base['seconds']:.2f} s; first workspace on it after"
                f" {base['first_reached']:.2f} s; {base['passes']} passes, daemon CPU"
                f" {base['cpu']:.1f} s; load {base['load_before']} -> {base['load_after']}")
            say(f"  ratio rollout / all at once = {ro['seconds'] / base['seconds']:.2f}")
        rss = cfg["rss_end"]
        say(f"  daemon at the end: VmRSS {rss['VmRSS'] / 1024:.1f} MiB, VmHWM"
            f" {rss['VmHWM'] / 1024:.1f} MiB ({rss.get('Threads', '?')} threads)")


if __name__ == "__main__":
    sys.exit(main())
