#!/usr/bin/env python3
"""Compiles OCSF event classes into JSON Schema (draft 2020-12), for the test fixtures of
tests/fixtures/ocsf/: the repository must stand alone, so the schemas the tests validate
against are generated once from a checkout of the OCSF schema repository (github.com/ocsf/
ocsf-schema, at the release tag) and committed.

    git -C ocsf-schema archive v1.3.0 | tar -x -C /tmp/ocsf-1.3.0
    scripts/ocsf-json-schema.py /tmp/ocsf-1.3.0 findings/detection_finding \
        > tests/fixtures/ocsf/1.3.0/detection_finding.schema.json

What is checked: the class's attributes (its own, its parents', its includes and profiles)
and no others at the event and object level (`unmapped` and `object_t` stay open), every
`required` attribute, types (string, integer, number, boolean, object, arrays), the
integer enums (`*_id`, with the dictionary's values merged with the class's), the fixed
`class_uid`, `category_uid` and, per activity, `type_uid`, and `at_least_one` constraints.
Not checked: regexes of string types and `recommended` attributes.
"""

import json
import os
import sys

PRIMITIVES = {
    "string_t": {"type": "string"},
    "integer_t": {"type": "integer"},
    "long_t": {"type": "integer"},
    "timestamp_t": {"type": "integer"},
    "float_t": {"type": "number"},
    "boolean_t": {"type": "boolean"},
    "json_t": {},
    "object_t": {"type": "object"},
}


def load(root, path):
    with open(os.path.join(root, path)) as f:
        return json.load(f)


class Compiler:
    def __init__(self, root):
        self.root = root
        self.dictionary = load(root, "dictionary.json")
        self.types = self.dictionary["types"]["attributes"]
        self.objects = {}
        for name in os.listdir(os.path.join(root, "objects")):
            obj = load(root, os.path.join("objects", name))
            self.objects[obj["name"]] = obj
        self.defs = {}

    def attributes(self, spec, kind):
        """The attributes of a class or object, parents and includes merged in."""
        merged = {}
        parent = spec.get("extends")
        if parent:
            if kind == "event":
                merged = self.attributes(self.find_event(parent), kind)
            elif parent in self.objects:
                merged = self.attributes(self.objects[parent], kind)
        own = dict(spec.get("attributes", {}))
        for include in own.pop("$include", []) if isinstance(own.get("$include"), list) else [own.pop("$include", None)]:
            if include:
                profile = include.startswith("profiles/")
                for name, attr in load(self.root, include).get("attributes", {}).items():
                    # A profile's attributes are required only when the event applies the
                    # profile (metadata.profiles), which Vigil's events do not.
                    merged[name] = {**merged.get(name, {}), **attr, **({"requirement": "optional"} if profile else {})}
        for name, attr in own.items():
            merged[name] = {**merged.get(name, {}), **attr}
        return merged

    def find_event(self, name):
        for dirpath, _, files in os.walk(os.path.join(self.root, "events")):
            for f in files:
                spec = load(self.root, os.path.relpath(os.path.join(dirpath, f), self.root))
                if spec.get("name") == name:
                    return spec
        raise SystemExit(f"no event class named {name}")

    def attr_schema(self, name, attr):
        entry = {**self.dictionary["attributes"].get(name, {}), **{k: v for k, v in attr.items() if k != "description"}}
        ty = entry.get("type", "string_t")
        if ty == "object":
            # The generic object (`unmapped`, `data`): any members.
            schema = {"type": "object"}
        elif ty in self.objects:
            schema = {"$ref": f"#/$defs/{ty}"}
            self.object_def(ty)
        else:
            base = ty
            while base not in PRIMITIVES and base in self.types:
                base = self.types[base].get("type", base)
                if base == ty:
                    break
            schema = dict(PRIMITIVES.get(base, {"type": "string"}))
        enum = {**self.dictionary["attributes"].get(name, {}).get("enum", {}), **attr.get("enum", {})}
        if enum and schema.get("type") == "integer":
            schema["enum"] = sorted(int(k) for k in enum)
        if entry.get("is_array"):
            schema = {"type": "array", "items": schema}
        return schema

    def object_def(self, name):
        if name in self.defs:
            return
        self.defs[name] = {}
        spec = self.objects[name]
        attrs = self.attributes(spec, "object")
        self.defs[name] = self.shape(attrs, spec.get("constraints", {}))

    def shape(self, attrs, constraints):
        properties = {n: self.attr_schema(n, a) for n, a in sorted(attrs.items())}
        required = sorted(n for n, a in attrs.items() if a.get("requirement") == "required")
        schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        if constraints.get("at_least_one"):
            schema["anyOf"] = [{"required": [n]} for n in constraints["at_least_one"]]
        if constraints.get("just_one"):
            schema["oneOf"] = [{"required": [n]} for n in constraints["just_one"]]
        return schema

    def event(self, path):
        spec = load(self.root, f"events/{path}.json")
        spec.setdefault("caption", spec.get("name", path))
        categories = load(self.root, "categories.json")["attributes"]
        # The Base Event (`base_event`) is class 0 of no category (`other`, uid 0).
        category = categories.get(spec.get("category", path.split("/")[0]), {"uid": 0})
        class_uid = category["uid"] * 1000 + spec["uid"] if spec.get("uid") is not None else 0
        attrs = self.attributes(spec, "event")
        schema = self.shape(attrs, spec.get("constraints", {}))
        activities = schema["properties"]["activity_id"]["enum"]
        schema["properties"]["class_uid"] = {"const": class_uid}
        schema["properties"]["category_uid"] = {"const": category["uid"]}
        schema["properties"]["type_uid"] = {"enum": [class_uid * 100 + a for a in activities]}
        schema["allOf"] = [
            {"if": {"properties": {"activity_id": {"const": a}}, "required": ["activity_id"]},
             "then": {"properties": {"type_uid": {"const": class_uid * 100 + a}}}}
            for a in activities
        ]
        version = load(self.root, "version.json")["version"]
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://schema.ocsf.io/{version}/classes/{spec['name']}",
            "title": f"OCSF {version} {spec['caption']} ({class_uid})",
            **schema,
            "$defs": dict(sorted(self.defs.items())),
        }


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(json.dumps(Compiler(sys.argv[1]).event(sys.argv[2]), indent=1, sort_keys=False))


if __name__ == "__main__":
    main()
