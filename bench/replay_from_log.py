#!/usr/bin/env python3
"""Turns the statement log of an operator run into psql scripts that send the same statements.

Reads a PostgreSQL csvlog written with log_statement=all, keeps every statement the operator's
sessions sent (simple-protocol text, and extended-protocol executes with their parameters
substituted), attributes each to a workspace (by the `bench_NNNN` in its database, user or text),
and writes:
  serial.sql        every workspace's statements, one workspace after the other, one psql session
  part_K.sql        the workspaces dealt round-robin over K files, for K parallel psql sessions
  pgpass            passwords of the tenant roles (derived from the master key as the operator
                    does), so the replay logs in as the same users
Statements that belong to no workspace (the catalog query) go once at the start of serial.sql
and part_0.sql.
"""
import base64
import csv
import hashlib
import hmac
import re
import sys
from collections import OrderedDict

csv.field_size_limit(1 << 30)
logfile, outdir, parts, master_key, host, port, cluster = sys.argv[1:8]
parts = int(parts)
admin_user = sys.argv[8] if len(sys.argv) > 8 else "postgres"
# Databases whose statements are not replayed (comma-separated), nor their creation (the check
# for the name and the CREATE DATABASE): the daemon's store, its own bookkeeping, not the tenants'
# statements (bench/clusters_converge.sh). Tenant databases have a `tenant_master` schema, so
# only these two statements are matched, not any text that names it.
skip_databases = set(filter(None, (sys.argv[9] if len(sys.argv) > 9 else "").split(",")))
SKIP_CREATION = [re.compile(rf"^\s*(CREATE DATABASE \"?{re.escape(name)}\"?|SELECT 1 FROM "
                            rf"pg_catalog\.pg_database WHERE datname = '{re.escape(name)}')\s*;?\s*$")
                 for name in skip_databases]

WORKSPACE = re.compile(r"bench_(\d+)")
PARAM = re.compile(r"\$(\d+) = ('(?:[^']|'')*'|NULL)")

streams = OrderedDict()  # workspace -> list of (db, user, sql)
common = []
users = set()

with open(logfile, newline="") as f:
    for row in csv.reader(f):
        user, db, message, detail = row[1], row[2], row[13], row[14]
        app = row[22] if len(row) > 22 else ""
        if app == "psql" or not message or db in skip_databases:
            continue
        if message.startswith("statement: "):
            sql = message[len("statement: "):]
        elif message.startswith("execute ") and ": " in message:
            sql = message.split(": ", 1)[1]
            if detail.startswith("parameters: "):
                values = dict(PARAM.findall(detail))
                sql = re.sub(r"\$(\d+)", lambda m: values.get(m.group(1), m.group(0)), sql)
        else:
            continue
        if any(p.match(sql) for p in SKIP_CREATION):
            continue
        m = WORKSPACE.search(db) or WORKSPACE.search(user) or WORKSPACE.search(sql)
        if user != admin_user:
            users.add(user)
        if m is None:
            common.append((db, user, sql))
        else:
            streams.setdefault(m.group(1), []).append((db, user, sql))


def emit(out, statements, state):
    for db, user, sql in statements:
        if state.get("conn") != (db, user):
            out.write(f'\\connect "dbname={db} user={user} host={host} port={port}"\n')
            state["conn"] = (db, user)
        out.write(sql.rstrip().rstrip(";") + ";\n")


def header(out):
    out.write("\\set ON_ERROR_STOP 1\n\\set QUIET 1\n")


with open(f"{outdir}/serial.sql", "w") as out:
    header(out)
    state = {}
    emit(out, common, state)
    for ws in streams.values():
        emit(out, ws, state)

files = [open(f"{outdir}/part_{k}.sql", "w") for k in range(parts)]
states = [{} for _ in range(parts)]
for out in files:
    header(out)
emit(files[0], common, states[0])
for i, ws in enumerate(streams.values()):
    emit(files[i % parts], ws, states[i % parts])
for out in files:
    out.close()

with open(f"{outdir}/pgpass", "w") as out:
    for user in sorted(users):
        digest = hmac.new(master_key.encode(), f"postgres/{cluster}/{user}/0".encode(),
                          hashlib.sha256).digest()
        password = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        out.write(f"{host}:{port}:*:{user}:{password}\n")

total = len(common) + sum(len(s) for s in streams.values())
print(f"{len(streams)} workspaces, {total} statements, {len(users)} tenant roles", file=sys.stderr)
