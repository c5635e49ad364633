"""What bench/daemon_latency.py and bench/binding_latency.py share: the bench product and its
fleet of shared workspaces, the head of the daemon's config, and a daemon started in the
background that is asked over HTTP. Imported by those scripts from their own folder (Python puts
a script's folder first on sys.path), so they run from any working directory.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

PRODUCT = """apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: bench}
spec: {image: example/bench, defaultVersion: "1.0.0", migrations: migrations, extensions: [pg_trgm], modes: [shared]}
"""

CONFIG_HEAD = """baseDomain: bench.test
masterKeyEnv: TM_MASTER_KEY
clusters: {clusters}
stacks: {{backend: directory, directory: {work}/deployments}}
http: {{listen: 127.0.0.1:{port}{token}}}
reconcile: {{workers: 4, resyncInterval: 30m, maxDeletionsPerSync: 3}}
"""


def say(*args):
    print(*args, flush=True)


def arg_parser():
    """The options the shell script gives every helper: --operator, --root (the checkout) and
    --work (the work folder); the helper adds its own."""
    p = argparse.ArgumentParser()
    for option in ("--operator", "--root", "--work"):
        p.add_argument(option, required=True)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_head(work, token_env=None, clusters="[{name: default, dsnEnv: TM_PG_DSN}]"):
    """The config up to its sources: `clusters` (a YAML flow list; one cluster `default` on
    TM_PG_DSN unless given), directory stacks under WORK, HTTP on a free loopback port (with the
    admin token from `token_env`, if given), 4 workers, a 30 min resync."""
    token = f", tokenEnv: {token_env}" if token_env else ""
    return CONFIG_HEAD.format(clusters=clusters, work=work, port=free_port(), token=token)


def workspace_doc(name, limit=5):
    return ("apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
            f"metadata: {{name: {name}}}\n"
            f"spec: {{product: bench, mode: shared, database: {{connectionLimit: {limit}}}}}\n")


def make_fleet(root, fleet, names):
    """FLEET/product.yaml (the inventory example's migrations, one extension, shared mode) and
    one FLEET/workspaces/<name>.yaml per name."""
    os.makedirs(os.path.join(fleet, "migrations"))
    os.makedirs(os.path.join(fleet, "workspaces"))
    src = os.path.join(root, "examples", "fleet", "migrations", "inventory")
    for name in sorted(os.listdir(src)):
        if name.endswith(".sql"):
            shutil.copy(os.path.join(src, name), os.path.join(fleet, "migrations", name))
    with open(os.path.join(fleet, "product.yaml"), "w") as f:
        f.write(PRODUCT)
    for name in names:
        with open(os.path.join(fleet, "workspaces", name + ".yaml"), "w") as f:
            f.write(workspace_doc(name))


class Daemon:
    """`operator --config CONFIG --state-dir STATE_DIR` in its own session, its output appended to
    LOG and its pid to PIDS (for the shell script's trap); returns once GET /healthz answers 200.
    With a token, every request carries it as a Bearer token."""

    def __init__(self, operator, config, log, env, state_dir, pids, token=None):
        self.log = log
        self.conn = None
        self.auth = {"Authorization": "Bearer " + token} if token else {}
        with open(config) as f:
            self.port = int(re.search(r"listen: 127\.0\.0\.1:(\d+)", f.read()).group(1))
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([operator, "--config", config, "--state-dir", state_dir],
                                         stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        with open(pids, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {log}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not serving after 60 s; see {log}")
            time.sleep(0.02)

    def request(self, method, path, body=None, headers=None, keep_alive=False):
        """One HTTP request. By default on a new connection each time: on a kept-alive
        connection every answer of the daemon's HTTP server arrives about 40 ms late (it writes
        the headers and the body separately without TCP_NODELAY, and the second write waits for
        the client's delayed ACK), which would swamp what is measured here; see probe_http in
        bench/daemon_latency.py."""
        headers = dict(self.auth, **(headers or {}))
        if not keep_alive:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request(method, path, body=body, headers=dict(headers, Connection="close"))
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError

    def get(self, path, keep_alive=False):
        return self.request("GET", path, keep_alive=keep_alive)

    def workspace(self, name):
        """(generation, observedGeneration, phase) of the workspace, or None if not found."""
        status, data = self.get("/api/v1/workspaces/" + name)
        if status != 200:
            return None
        doc = json.loads(data)
        st = doc.get("status") or {}
        return (doc["metadata"]["generation"], st.get("observedGeneration", 0), st.get("phase", ""))

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
