"""A small JSON-Schema (draft-07) validator: exactly the keywords the Compose Specification schema uses.

``jsonschema`` is not a pinned dependency, and the compose schema needs only a dozen
keywords. Any keyword that is not handled here raises, so the schema can never be
silently half-checked (a newer vendored schema that needs more fails loudly).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SchemaError", "validate"]

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "deprecated", "examples", "format"}
_HANDLED = {"$ref", "type", "enum", "const", "properties", "patternProperties", "additionalProperties", "required",
            "items", "oneOf", "anyOf", "allOf", "not", "uniqueItems", "minimum", "maximum", "minItems", "maxItems",
            "pattern", "definitions"}


class SchemaError(ValueError):
    """The schema itself uses something this validator does not implement."""


def _is_type(value: Any, name: str) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    if name not in checks:
        raise SchemaError(f"unknown type {name!r}")
    return checks[name](value)


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise SchemaError(f"only local references are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate(instance: Any, schema: dict[str, Any] | bool, root: dict[str, Any] | None = None,
             where: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``instance``, as ``'<json path>: <reason>'`` strings."""
    if isinstance(schema, bool):
        return [] if schema else [f"{where}: not allowed"]
    root = schema if root is None else root
    unknown = set(schema) - _ANNOTATIONS - _HANDLED
    if unknown:
        raise SchemaError(f"unsupported keyword(s) {sorted(unknown)} at {where}")
    if "$ref" in schema:
        return validate(instance, _resolve(root, schema["$ref"]), root, where)

    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, name) for name in names):
            return [f"{where}: expected {'/'.join(names)}, got {type(instance).__name__} {instance!r}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{where}: must be {schema['const']!r}")

    for keyword, branches in (("allOf", schema.get("allOf")), ("anyOf", schema.get("anyOf")),
                              ("oneOf", schema.get("oneOf"))):
        if branches is None:
            continue
        results = [validate(instance, branch, root, where) for branch in branches]
        passing = sum(not result for result in results)
        if keyword == "allOf" and passing != len(branches):
            errors += [error for result in results for error in result]
        elif keyword == "anyOf" and passing == 0:
            errors.append(f"{where}: matches none of anyOf ({'; '.join(r[0] for r in results)})")
        elif keyword == "oneOf" and passing != 1:
            detail = "; ".join(r[0] for r in results if r) if passing == 0 else f"{passing} branches match"
            errors.append(f"{where}: must match exactly one of oneOf ({detail})")
    if "not" in schema and not validate(instance, schema["not"], root, where):
        errors.append(f"{where}: must not match {schema['not']}")

    if isinstance(instance, dict):
        errors += _validate_object(instance, schema, root, where)
    if isinstance(instance, list):
        errors += _validate_array(instance, schema, root, where)
    if isinstance(instance, str) and "pattern" in schema and not re.search(schema["pattern"], instance):
        errors.append(f"{where}: {instance!r} does not match {schema['pattern']!r}")
    if _is_type(instance, "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{where}: {instance} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{where}: {instance} > maximum {schema['maximum']}")
    return errors


def _validate_object(instance: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    errors = [f"{where}: missing required {name!r}" for name in schema.get("required", []) if name not in instance]
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for key, value in instance.items():
        matched = False
        if key in properties:
            matched = True
            errors += validate(value, properties[key], root, f"{where}.{key}")
        for pattern, subschema in patterns.items():
            if re.search(pattern, key):
                matched = True
                errors += validate(value, subschema, root, f"{where}.{key}")
        if not matched and "additionalProperties" in schema:
            errors += validate(value, schema["additionalProperties"], root, f"{where}.{key}")
    return errors


def _validate_array(instance: list[Any], schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    errors = []
    items = schema.get("items")
    if isinstance(items, list):
        for index, (value, subschema) in enumerate(zip(instance, items, strict=False)):
            errors += validate(value, subschema, root, f"{where}[{index}]")
    elif items is not None:
        for index, value in enumerate(instance):
            errors += validate(value, items, root, f"{where}[{index}]")
    if schema.get("uniqueItems") and len({repr(value) for value in instance}) != len(instance):
        errors.append(f"{where}: items are not unique")
    if "minItems" in schema and len(instance) < schema["minItems"]:
        errors.append(f"{where}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        errors.append(f"{where}: more than {schema['maxItems']} items")
    return errors
