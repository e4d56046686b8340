#!/usr/bin/env python3
"""Events per second through each input, on one server: POST /v1/events (JSON arrays),
POST /v1/logs (OTLP/HTTP protobuf, built with the opentelemetry-proto package that the
OTLP exporter installs) and a syslog listener (RFC 5424, octet counting, one TCP
connection). Each run sends the same events (login failures with a user, an IP and a
details member) in batches; a run's time ends when the last event is committed (the HTTP
answers come after the commit; for syslog the log's head is polled). Prints every run and
the median per input.

    scripts/bench-inputs.py --binary target/release/vigil --events 20000 --runs 3

The server runs on a fresh SQLite database in a temp dir, without rules.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

KEY = "vgl_bench_inputs_0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, path, body, content_type):
    req = urllib.request.Request(base + path, data=body, method="POST")
    req.add_header("Authorization", "Bearer " + KEY)
    req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.status, resp.read()


def head(base):
    req = urllib.request.Request(base + "/v1/integrity/head")
    req.add_header("Authorization", "Bearer " + KEY)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["seq"]


def event(i):
    return {"category": "authentication", "action": "login_failed", "outcome": "failure",
            "user_id": f"user{i % 1000}", "ip": f"203.0.113.{i % 250}", "details": {"method": "password"}}


def run_events(base, n, batch):
    start = time.perf_counter()
    for lo in range(0, n, batch):
        body = json.dumps([event(i) for i in range(lo, min(n, lo + batch))]).encode()
        status, _ = request(base, "/v1/events", body, "application/json")
        assert status == 201, status
    return time.perf_counter() - start


def otlp_body(lo, hi):
    records = []
    for i in range(lo, hi):
        e = event(i)
        attrs = [common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=e[v]))
                 for k, v in [("event.category", "category"), ("event.action", "action"),
                              ("event.outcome", "outcome"), ("user.id", "user_id"), ("client.address", "ip")]]
        attrs.append(common_pb2.KeyValue(key="method", value=common_pb2.AnyValue(string_value="password")))
        records.append(logs_pb2.LogRecord(time_unix_nano=time.time_ns(), severity_number=13, attributes=attrs))
    req = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=records)])])
    return req.SerializeToString()


def run_otlp(base, n, batch):
    bodies = [otlp_body(lo, min(n, lo + batch)) for lo in range(0, n, batch)]
    start = time.perf_counter()
    for body in bodies:
        status, _ = request(base, "/v1/logs", body, "application/x-protobuf")
        assert status == 200, status
    return time.perf_counter() - start


def run_syslog(base, port, n):
    lines = []
    for i in range(n):
        e = event(i)
        msg = (f"<38>1 2026-01-05T08:00:00.000Z web1 app - - - category={e['category']} action={e['action']} "
               f"outcome={e['outcome']} user_id={e['user_id']} ip={e['ip']} method=password")
        data = msg.encode()
        lines.append(str(len(data)).encode() + b" " + data)
    payload = b"".join(lines)
    target = head(base) + n
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        while head(base) < target:
            time.sleep(0.005)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/vigil")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-bench-inputs.")
    port, syslog_port = free_port(), free_port()
    with open(os.path.join(work, "vigil.toml"), "w") as f:
        f.write(f'data_dir = "{work}"\n[[inputs.syslog]]\nname = "bench"\naddress = "127.0.0.1:{syslog_port}"\n')
    env = dict(os.environ, VIGIL_ADMIN_KEY=KEY, VIGIL_LOG="warn")
    server = subprocess.Popen([args.binary, "serve", "--listen", f"127.0.0.1:{port}",
                               "--database-url", f"sqlite://{work}/vigil.db", "--config", f"{work}/vigil.toml"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        results = {"POST /v1/events": [], "POST /v1/logs (OTLP protobuf)": [], "syslog (RFC 5424, octet counting)": []}
        for r in range(args.runs):
            for name, fn in [("POST /v1/events", lambda: run_events(base, args.events, args.batch)),
                             ("POST /v1/logs (OTLP protobuf)", lambda: run_otlp(base, args.events, args.batch)),
                             ("syslog (RFC 5424, octet counting)", lambda: run_syslog(base, syslog_port, args.events))]:
                secs = fn()
                rate = args.events / secs
                results[name].append(rate)
                print(f"run {r + 1}: {name}: {args.events} events in {secs:.2f} s = {rate:,.0f} events/s", flush=True)
        print(f"\nmedians of {args.runs} runs, {args.events} events each (batches of {args.batch} over HTTP):")
        for name, rates in results.items():
            print(f"  {name:36} {statistics.median(rates):>10,.0f} events/s")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
