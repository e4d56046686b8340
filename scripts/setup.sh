#!/usr/bin/env bash
# Installs what Vigil needs beyond the Rust toolchain: the wasm32 target (rules compile to
# WebAssembly) and, for the test suite, a running PostgreSQL at 127.0.0.1:5432 and the
# Python SMTP server (aiosmtpd) the email receiver tests deliver to, schemathesis and
# Playwright with Debian's Chromium (API and dashboard tests), Prometheus' `promtool`
# (Debian's prometheus package) that checks the metrics exposition, the OpenTelemetry
# Python SDK with its OTLP/HTTP exporter (the OTLP input tests), Debian's rsyslog (the
# syslog input and forwarder tests), nats-server (the NATS forwarder tests and the cluster
# tests, which start a private 3-server JetStream cluster) and moto's S3 server (the
# retention archive tests).
# Usage: scripts/setup.sh [--postgres]
set -euo pipefail

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

if [[ "${1:-}" == "--postgres" ]]; then
    # Python test tools: aiosmtpd (the email receiver tests), schemathesis (checks the live
    # API against its OpenAPI document), playwright (drives Chromium in the dashboard tests).
    for module in aiosmtpd schemathesis playwright; do
        python3 -c "import $module" 2>/dev/null \
            || python3 -m pip install --quiet --disable-pip-version-check "$module"
    done
    # moto's S3 server (the retention archive tests start a private one on a free port).
    python3 -c "import moto.server, flask_cors" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
    # The OpenTelemetry Python SDK and its OTLP/HTTP exporter (the POST /v1/logs tests).
    python3 -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    if ! command -v chromium >/dev/null 2>&1; then
        echo "chromium is not installed; installing Debian's chromium package with apt-get" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    if ! command -v rsyslogd >/dev/null 2>&1; then
        echo "rsyslog is not installed; installing Debian's rsyslog package with apt-get (the syslog input tests)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsyslog >/dev/null
    fi
    if ! command -v nats-server >/dev/null 2>&1; then
        echo "nats-server is not installed; installing Debian's nats-server package with apt-get (the NATS forwarder and cluster tests)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null
    fi
    if ! command -v promtool >/dev/null 2>&1; then
        echo "promtool is not installed; installing Debian's prometheus package with apt-get" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        if ! command -v pg_ctlcluster >/dev/null 2>&1; then
            echo "PostgreSQL is not installed; installing it with apt-get" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        fi
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    pg_isready -h 127.0.0.1 -p 5432
    # Tests connect as postgres to database `test` (trust auth on this machine kind).
    if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'SELECT 1' >/dev/null 2>&1; then
        psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
    fi
fi
