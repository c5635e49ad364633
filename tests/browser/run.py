#!/usr/bin/env python3
"""The dashboard's browser test (issue 14), end to end: a private PostgreSQL, the built
tenant-operator on a small fleet, and Debian's chromium (or, with TM_BROWSER=firefox, its
firefox-esr) driven headless by puppeteer-core
(tests/browser/dashboard.test.mjs).

    tests/browser/run.py --operator BUILD/tenant-operator --artifacts BUILD/test-artifacts/browser

CTest runs it as `browser_dashboard` (tests/CMakeLists.txt); scripts/install-deps.sh installs
chromium, Node and tests/browser/node_modules. The fleet (a directory source):
  - products `landing` (the examples') and `ledger`, whose one migration fails;
  - workspaces `alpha` and `bravo` (landing, shared: Ready on the real PostgreSQL) and `broken`
    (ledger: Stalled, reason MigrationFailed, the failing file and line in its message).
Users (http.usersFile): `viola`, a viewer with a bcrypt hash made here. Everything it starts is
stopped on the way out, failure or not; KEEP=1 keeps the work folder (its path is printed).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHROMIUM = os.environ.get("TM_CHROMIUM", "/usr/bin/chromium")

ADMIN_TOKEN = "browser-test-admin-token-0123456789abcdef"
READ_TOKEN = "browser-test-read-token-0123456789abcdef"
MASTER_KEY = "browser-test-master-key-0123456789abcdef0123"
VIEWER_NAME = "viola"
VIEWER_PASSWORD = "viola-password-for-the-browser-test"

LEDGER_PRODUCT = """---
apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: ledger
spec:
  displayName: Ledger (its migration fails)
  image: ghcr.io/acme/ledger
  defaultVersion: "1.0.0"
  port: 80
  stackTemplate: stacks/landing.yml
  migrations: migrations/ledger
  modes: [shared, dedicated]
"""

BROKEN_MIGRATION = """-- Fails on purpose: the browser test reads this failure on the workspace's page.
CREATE TABLE entries (id bigint PRIMARY KEY);
INSERT INTO entries SELECT id FROM ledger_that_does_not_exist;
"""


def workspace(name, product, labels=""):
    meta_labels = f"\n  labels: {{{labels}}}" if labels else ""
    return (f"apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}"
            f"{meta_labels}\nspec:\n  product: {product}\n  mode: shared\n")


def log(message):
    print(f"run.py: {message}", file=sys.stderr, flush=True)


def bcrypt_hash(password):
    """A bcrypt hash ($2b$, cost 4: the least the users file accepts; a test need not be slow) from
    libxcrypt through Python's crypt module (Debian 12's python3 has it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=import-outside-toplevel,deprecated-module
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2b$04$"):
        raise RuntimeError(f"crypt did not make a bcrypt hash: {hashed!r}")
    return hashed


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def write_fleet(work):
    fleet = os.path.join(work, "fleet")
    examples = os.path.join(ROOT, "examples", "fleet")
    with open(os.path.join(examples, "products.yaml"), encoding="utf-8") as f:
        products = f.read()
    # Only the examples' landing product (no extension, no shared runtime), then ledger.
    landing = [doc for doc in products.split("\n---\n") if re.search(r"name: landing\b", doc)]
    if len(landing) != 1:
        raise RuntimeError("examples/fleet/products.yaml: no single landing product")
    write(os.path.join(fleet, "products.yaml"), landing[0].strip() + "\n" + LEDGER_PRODUCT)
    os.makedirs(os.path.join(fleet, "stacks"), exist_ok=True)
    shutil.copy(os.path.join(examples, "stacks", "landing.yml"), os.path.join(fleet, "stacks"))
    shutil.copytree(os.path.join(examples, "migrations", "landing"),
                    os.path.join(fleet, "migrations", "landing"))
    write(os.path.join(fleet, "migrations", "ledger", "0001_entries.sql"), BROKEN_MIGRATION)
    write(os.path.join(fleet, "workspaces", "alpha.yaml"),
          workspace("alpha", "landing", "plan: gold"))
    write(os.path.join(fleet, "workspaces", "bravo.yaml"), workspace("bravo", "landing"))
    write(os.path.join(fleet, "workspaces", "broken.yaml"), workspace("broken", "ledger"))


def write_config(work):
    config = f"""baseDomain: example.test
masterKeyEnv: TM_MASTER_KEY
clusters:
  - name: default
    dsnEnv: TM_PG_DSN
store:
  dsnEnv: TM_STORE_DSN
sources:
  - name: local
    directory: {work}/fleet
stacks:
  backend: directory
  directory: {work}/deployments
http:
  listen: "127.0.0.1:0"
  tokenEnv: TM_API_TOKEN
  readTokenEnv: TM_READ_TOKEN
  usersFile: users.yaml
"""
    write(os.path.join(work, "operator.yaml"), config)
    users = f"users:\n  - name: {VIEWER_NAME}\n    hash: \"{bcrypt_hash(VIEWER_PASSWORD)}\"\n" \
            f"    role: viewer\n"
    write(os.path.join(work, "users.yaml"), users, mode=0o600)


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if value.startswith("'") and value.endswith("'"):
                value = value[1:-1]
            env[key] = value
    return env


def wait_for(what, predicate, timeout, proc=None, logfile=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = ""
    if logfile and os.path.exists(logfile):
        with open(logfile, encoding="utf-8", errors="replace") as f:
            tail = "".join(f.readlines()[-40:])
    raise RuntimeError(f"timed out waiting for {what}\n{tail}")


def http_status(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operator", required=True, help="the built tenant-operator")
    parser.add_argument("--artifacts", required=True, help="where screenshots go")
    parser.add_argument("--test", default=os.path.join(HERE, "dashboard.test.mjs"))
    parser.add_argument("scenarios", nargs="*", help="run only the scenarios naming these")
    args = parser.parse_args()

    if not os.path.isdir(os.path.join(HERE, "node_modules", "puppeteer-core")):
        log("tests/browser/node_modules is missing: run scripts/install-deps.sh")
        return 1
    browser = (os.environ.get("TM_FIREFOX", "/usr/bin/firefox-esr")
               if os.environ.get("TM_BROWSER") == "firefox" else CHROMIUM)
    if not os.access(browser, os.X_OK):
        log(f"{browser} is missing: run scripts/install-deps.sh")
        return 1
    os.makedirs(args.artifacts, exist_ok=True)
    for old in os.listdir(args.artifacts):
        if old.endswith(".png") or old.endswith(".log"):
            os.remove(os.path.join(args.artifacts, old))

    work = tempfile.mkdtemp(prefix="tm-browser.", dir="/tmp")
    os.chmod(work, 0o755)
    envfile = os.path.join(work, "pg.env")
    operator = None
    test = None
    oplog = os.path.join(work, "operator.log")
    try:
        started = time.monotonic()
        subprocess.run([os.path.join(ROOT, "scripts", "pg-private.sh"), "start", envfile],
                       check=True, env=dict(os.environ, TM_PG_FSYNC="off"))
        pg = read_env(envfile)
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE tm_store"],
                       check=True, env=dict(os.environ, **{k: v for k, v in pg.items()
                                                           if k.startswith("PG")}))
        write_fleet(work)
        write_config(work)
        env = dict(os.environ,
                   TM_MASTER_KEY=MASTER_KEY,
                   TM_PG_DSN=pg["TM_PG_DSN"],
                   TM_STORE_DSN=pg["TM_PG_DSN"].replace("dbname=postgres", "dbname=tm_store"),
                   TM_API_TOKEN=ADMIN_TOKEN,
                   TM_READ_TOKEN=READ_TOKEN)
        with open(oplog, "w", encoding="utf-8") as out:
            operator = subprocess.Popen(
                [args.operator, "--config", os.path.join(work, "operator.yaml"),
                 "--state-dir", os.path.join(work, "state")],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def port():
            with open(oplog, encoding="utf-8", errors="replace") as f:
                found = re.search(r"serving http://\S+ \(port (\d+)\)", f.read())
            return int(found.group(1)) if found else None

        base = f"http://127.0.0.1:{wait_for('the HTTP port', port, 60, operator, oplog)}"

        def converged():
            # /readyz is 503 while a source is unhealthy or a workspace is Stalled, which this
            # fleet is on purpose: wait for the fleet itself instead.
            status, body = http_status(f"{base}/api/v1/workspaces", ADMIN_TOKEN)
            if status != 200:
                return None
            phases = {item["metadata"]["name"]: item.get("status", {}).get("phase")
                      for item in json.loads(body)["items"]}
            want = {"alpha": "Ready", "bravo": "Ready", "broken": "Stalled"}
            return phases if all(phases.get(k) == v for k, v in want.items()) else None

        wait_for("/healthz", lambda: http_status(f"{base}/healthz")[0] == 200, 60, operator, oplog)
        phases = wait_for("alpha, bravo Ready and broken Stalled", converged, 90, operator, oplog)
        log(f"operator on {base}, fleet {phases} after {time.monotonic() - started:.1f} s")

        test_env = dict(os.environ,
                        TM_URL=base,
                        TM_ADMIN_TOKEN=ADMIN_TOKEN,
                        TM_READ_TOKEN=READ_TOKEN,
                        TM_VIEWER_NAME=VIEWER_NAME,
                        TM_VIEWER_PASSWORD=VIEWER_PASSWORD,
                        TM_CHROMIUM=CHROMIUM,
                        TM_ARTIFACTS=os.path.abspath(args.artifacts))
        # Its own process group: chromium and its helpers go with it, whatever happens.
        test = subprocess.Popen(["node", args.test] + args.scenarios, env=test_env, cwd=HERE,
                                start_new_session=True)
        returncode = test.wait()
        if returncode != 0:
            shutil.copy(oplog, os.path.join(args.artifacts, "operator.log"))
            log(f"failed; the operator's log is in {args.artifacts}/operator.log")
        return returncode
    finally:
        if test is not None and test.poll() is None:
            # SIGTERM first: puppeteer closes chromium (its own process group) on it.
            os.killpg(test.pid, signal.SIGTERM)
            try:
                test.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(test.pid, signal.SIGKILL)
                test.wait()
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
                operator.wait()
        subprocess.run([os.path.join(ROOT, "scripts", "pg-private.sh"), "stop", envfile],
                       check=False)
        if os.environ.get("KEEP"):
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    # SIGTERM (ctest's timeout) unwinds through the finally above like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
