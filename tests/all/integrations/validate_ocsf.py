"""Validates JSON documents against a committed OCSF JSON Schema (tests/fixtures/ocsf/;
made by scripts/ocsf-json-schema.py from the OCSF schema repository at the release tag)
with the `jsonschema` package (installed with schemathesis by scripts/setup.sh).
Usage: validate_ocsf.py <schema.json> < documents (one JSON document per line)
Prints one line per document: `ok` or the validation errors; exits 1 if any failed."""

import json
import sys

import jsonschema

with open(sys.argv[1]) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema)
failed = False
for line in sys.stdin:
    if not line.strip():
        continue
    errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.absolute_path))
    if errors:
        failed = True
        print("; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]))
    else:
        print("ok")
sys.exit(1 if failed else 0)
