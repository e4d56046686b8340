"""Sends log records to Vigil's POST /v1/logs with the OpenTelemetry Python SDK's OTLP/HTTP
(protobuf) exporter, through the standard `logging` bridge, as an instrumented app would.
Usage: otlp_export.py <endpoint> <ingest key> [gzip]  (gzip: the exporter compresses its
bodies, as collectors do by default)"""

import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint, key = sys.argv[1], sys.argv[2]
compression = Compression.Gzip if sys.argv[3:] == ["gzip"] else Compression.NoCompression
exporter = OTLPLogExporter(endpoint=endpoint, headers={"Authorization": "Bearer " + key}, compression=compression)
provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
log = logging.getLogger("checkout.auth")
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
log.setLevel(logging.INFO)
log.propagate = False

log.warning(
    "wrong password",
    extra={
        "event.category": "authentication",
        "event.action": "login_failed",
        "event.outcome": "failure",
        "user.id": "alice",
        "client.address": "203.0.113.9",
        "log.record.uid": "otel-login-1",
        "password": "hunter2",
    },
)
log.info(
    "signed in",
    extra={"event.category": "authentication", "event.action": "login_success", "user.id": "alice"},
)
# No category: refused by Vigil (named in the partial-success answer), nothing stored.
log.info("a plain log line")
provider.shutdown()
print("exported")
