#!/usr/bin/env python3
"""Generates core/src/schema/generated.rs: the list semantics (map keys, set, atomic), maps
and resource quantities of every built-in Kubernetes kind, read from the k8s-openapi crate's
generated sources (which carry the OpenAPI definitions' merge strategies as code).

    scripts/gen-k8s-schema.py            # writes core/src/schema/generated.rs
    scripts/gen-k8s-schema.py --check    # fails when the committed file is out of date

The crate's sources are found with `cargo metadata` (they are in the cargo registry after a
build). k8s-openapi records the patch merge key of each associative list; Kubernetes' apply
uses `x-kubernetes-list-map-keys`, which names more keys for a few lists — those are added
below (KEY_EXTENSIONS), with the defaults the API server fills in for them (KEY_DEFAULTS).
"""

import json
import os
import re
import subprocess
import sys

VERSION = "v1_37"
OUT = os.path.join(os.path.dirname(__file__), "..", "core", "src", "schema", "generated.rs")

# x-kubernetes-list-map-keys that go beyond the patch merge key k8s-openapi records
# (k8s.io/api: Container.ports, Service.spec.ports, PodSpec.topologySpreadConstraints).
KEY_EXTENSIONS = {
    ("crate::api::core::v1::ContainerPort", "containerPort"): ["containerPort", "protocol"],
    ("crate::api::core::v1::ServicePort", "port"): ["port", "protocol"],
    ("crate::api::core::v1::TopologySpreadConstraint", "topologyKey"): ["topologyKey", "whenUnsatisfiable"],
}

QUANTITY = "crate::apimachinery::pkg::api::resource::Quantity"
SCALARS = {
    "std::string::String", "i32", "i64", "f64", "bool", "crate::ByteString", "jiff::Timestamp",
    "crate::apimachinery::pkg::util::intstr::IntOrString", "crate::apimachinery::pkg::apis::meta::v1::Time",
    "crate::apimachinery::pkg::apis::meta::v1::MicroTime", "crate::serde_json::Value", "serde_json::Value",
    "crate::apimachinery::pkg::runtime::RawExtension", "crate::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON",
    "crate::apimachinery::pkg::apis::meta::v1::FieldsV1",
}


def src_dir():
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    for p in meta["packages"]:
        if p["name"] == "k8s-openapi":
            return os.path.join(os.path.dirname(p["manifest_path"]), "src", VERSION)
    sys.exit("k8s-openapi is not a dependency")


def strip_option(t):
    t = t.strip()
    m = re.fullmatch(r"Option<(.*)>", t)
    return m.group(1) if m else t


def parse(root):
    structs = {}   # rust path -> {"def": name, "fields": {rust: type}, "json": {rust: json}, "merge": {rust: strategy}}
    resources = []  # (apiVersion, kind, rust path)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or f == "mod.rs":
                continue
            text = open(os.path.join(dirpath, f)).read()
            m = re.search(r"// Generated from definition (\S+)", text)
            s = re.search(r"pub struct (\w+) \{\n(.*?)\n\}\n", text, re.S)
            if not m or not s:
                continue
            module = os.path.relpath(dirpath, root).replace(os.sep, "::")
            path = f"crate::{module}::{s.group(1)}" if module != "." else f"crate::{s.group(1)}"
            fields = dict(re.findall(r"^\s*pub (\w+): (.+),$", s.group(2), re.M))
            json_names = {rust: js for js, rust in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text)}
            merge = {}
            for strat, field, rest in re.findall(
                r"crate::merge_strategies::(list::\w+|map::\w+)\(\s*&mut self\.(\w+),\s*other\.\w+,?(.*?)\);\n",
                text, re.S):
                if strat == "list::map":
                    keys = re.findall(r"lhs\.(\w+) == rhs\.\1", rest)
                    # Keyed by a nested field (volumeClaimTemplates by metadata.name): server-side
                    # apply knows only top-level keys, so such a list is atomic.
                    merge[field] = ("map", keys) if keys else ("atomic", None)
                else:
                    merge[field] = (strat.split("::")[1] if strat.startswith("list") else "mapfield", None)
            structs[path] = {"def": m.group(1), "fields": fields, "json": json_names, "merge": merge}
            r = re.search(r'impl crate::Resource for \w+ \{\s*const API_VERSION: &\'static str = "([^"]+)";.*?const KIND: &\'static str = "([^"]+)";', text, re.S)
            if r and not r.group(2).endswith("List"):
                resources.append((r.group(1), r.group(2), path))
    return structs, resources


def shape_of(structs, owner, rust_field, typ):
    """(kind, detail) of one field: quantity, object, map, list — or None for scalars."""
    t = strip_option(typ)
    if t == QUANTITY:
        return ("quantity",)
    m = re.fullmatch(r"std::vec::Vec<(.*)>", t)
    if m:
        elem = elem_of(structs, m.group(1))
        strat, keys = structs[owner]["merge"].get(rust_field, ("atomic", None))
        if strat == "map":
            elem_struct = structs.get(m.group(1).strip())
            js = [elem_struct["json"].get(k, k) for k in keys] if elem_struct else keys
            ext = KEY_EXTENSIONS.get((m.group(1).strip(), js[0])) if len(js) == 1 else None
            return ("list", "map", ext or js, elem)
        return ("list", strat, None, elem)
    m = re.fullmatch(r"std::collections::BTreeMap<std::string::String, (.*)>", t)
    if m:
        return ("map", elem_of(structs, m.group(1)))
    if t in structs:
        return ("object", t)
    return None


def elem_of(structs, t):
    t = t.strip()
    if t == QUANTITY:
        return ("quantity",)
    if t in structs:
        return ("object", t)
    return ("scalar",)


def main():
    root = src_dir()
    structs, resources = parse(root)
    # Every struct reachable from a resource kind, in a stable order.
    order, seen = [], set()

    def visit(path):
        if path in seen:
            return
        seen.add(path)
        order.append(path)
        s = structs[path]
        for rust, typ in s["fields"].items():
            sh = shape_of(structs, path, rust, typ)
            if not sh:
                continue
            for part in sh:
                if isinstance(part, tuple) and part and part[0] == "object":
                    visit(part[1])
            if sh[0] == "object":
                visit(sh[1])

    for _, _, path in sorted(resources):
        visit(path)

    def fields_of(path):
        out = []
        s = structs[path]
        for rust, typ in sorted(s["fields"].items(), key=lambda kv: s["json"].get(kv[0], kv[0])):
            sh = shape_of(structs, path, rust, typ)
            if sh:
                out.append((s["json"].get(rust, rust), sh))
        return out

    kept = order
    index = {p: i for i, p in enumerate(kept)}

    def elem_code(e):
        if e[0] == "quantity":
            return "Elem::Quantity"
        if e[0] == "object" and e[1] in index:
            return f"Elem::Object(TypeId({index[e[1]]}))"
        return "Elem::Scalar"

    def shape_code(sh):
        if sh[0] == "quantity":
            return "Shape::Quantity"
        if sh[0] == "object":
            return f"Shape::Object(TypeId({index[sh[1]]}))" if sh[1] in index else None
        if sh[0] == "map":
            return f"Shape::Map({elem_code(sh[1])})"
        _, strat, keys, elem = sh
        kind = {
            "atomic": "ListKind::Atomic",
            "set": "ListKind::Set",
            "map": "ListKind::Map(&[" + ", ".join(json.dumps(k) for k in (keys or [])) + "])",
        }[strat]
        return f"Shape::List({kind}, {elem_code(elem)})"

    lines = [
        "// @generated by scripts/gen-k8s-schema.py from k8s-openapi " + VERSION + " — do not edit.",
        "//! The shapes of the built-in Kubernetes types (generated): for each type reachable from a",
        "//! resource kind, its fields that are not plain scalars — quantities, objects, maps and lists",
        "//! with their semantics (atomic, set, or a map keyed by the listed fields).",
        "",
        "use super::{Elem, ListKind, Shape, TypeDef, TypeId};",
        "",
        "pub(super) static TYPES: &[TypeDef] = &[",
    ]
    for p in kept:
        fs = []
        for name, sh in fields_of(p):
            code = shape_code(sh)
            if code:
                fs.append(f"({json.dumps(name)}, {code})")
        lines.append(f"    TypeDef {{ name: {json.dumps(structs[p]['def'])}, fields: &[{', '.join(fs)}] }},  // {index[p]}")
    lines.append("];")
    lines.append("")
    lines.append("/// (apiVersion, kind, type) of every built-in resource kind, sorted.")
    lines.append("pub(super) static KINDS: &[(&str, &str, TypeId)] = &[")
    for av, kind, p in sorted(resources):
        if p in index:
            lines.append(f"    ({json.dumps(av)}, {json.dumps(kind)}, TypeId({index[p]})),")
    lines.append("];")
    text = "\n".join(lines) + "\n"
    if "--check" in sys.argv:
        current = open(OUT).read() if os.path.exists(OUT) else ""
        if current != text:
            sys.exit(f"{OUT} is out of date: run scripts/gen-k8s-schema.py")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    open(OUT, "w").write(text)
    kinds = sum(1 for av, kind, p in resources if p in index)
    print(f"wrote {OUT}: {len(kept)} types, {kinds} kinds")


if __name__ == "__main__":
    main()
