"""Options models with variants: a command whose options depend on one of them (export's `format`) has one model
per variant, joined by a pydantic discriminated union (`Field(discriminator=KEY)`) in a `RootModel`, so an option
the chosen variant does not have is refused where the options enter, on the CLI and over HTTP alike.

What is generated from an options model (flags, a job kind's argv and JSON Schema, the console's form, the fields
the jobs' door confines) reads its fields here, the same for a plain model and a union: `fields_of` gives every
variant's fields once, `variants_of` which variant has which, `unwrap` the chosen variant's validated options.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, RootModel
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Variants:
    """The variants of a union options model: the key that picks one (`format`) and, per value, its model."""

    key: str
    models: dict[str, type[BaseModel]]

    def having(self, name: str) -> list[str]:
        """The values of the key whose variant has the option `name`."""
        return [tag for tag, model in self.models.items() if name in model.model_fields]


def variants_of(model: type[BaseModel]) -> Variants | None:
    """The variants of `model` when it is a RootModel over a discriminated union; None for a plain options model."""
    if not (isinstance(model, type) and issubclass(model, RootModel)):
        return None
    root = model.model_fields["root"]
    key = root.discriminator
    if not isinstance(key, str):
        return None
    members = typing.get_args(root.annotation)
    return Variants(key, {typing.get_args(m.model_fields[key].annotation)[0]: m for m in members})


def fields_of(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Every option of `model`, once: a plain model's fields; for a union, each variant's in order, the key as a
    Literal of every variant's value (described by the union's own description). Two variants may share an option
    only with one type: a flag, a form input and a JSON Schema property have one type (TypeError otherwise)."""
    found = variants_of(model)
    if found is None:
        return dict(model.model_fields)
    out: dict[str, FieldInfo] = {}
    owner: dict[str, str] = {}
    for tag, member in found.models.items():
        for name, info in member.model_fields.items():
            if name == found.key:
                if name not in out:
                    out[name] = FieldInfo(annotation=Literal[tuple(found.models)],  # type: ignore[arg-type]
                                          description=model.model_fields["root"].description)
                continue
            if name in out and out[name].annotation != info.annotation:
                raise TypeError(f"{model.__name__}: option {name!r} is {out[name].annotation} in {owner[name]!r} "
                                f"but {info.annotation} in {tag!r}: give one of them another name")
            out.setdefault(name, info)
            owner.setdefault(name, tag)
    return out


def unwrap(options: Any) -> Any:
    """The chosen variant's options of a validated union (a plain model's options as they are)."""
    return options.root if isinstance(options, RootModel) else options


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON Schema a form is built from: a plain model's own; for a union, every variant's properties once (the
    key as an enum of the values) and as required what every variant requires. `variants_of` says which option
    goes with which value; `POST /v1/jobs` validates against the union itself."""
    found = variants_of(model)
    if found is None:
        return model.model_json_schema()
    schemas = {tag: m.model_json_schema() for tag, m in found.models.items()}
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for schema in schemas.values():
        defs.update(schema.get("$defs", {}))
        for name, prop in schema.get("properties", {}).items():
            properties.setdefault(name, prop)
    key = {k: v for k, v in properties[found.key].items() if k not in ("const", "default")}
    properties[found.key] = {**key, "enum": list(found.models), "type": "string",
                             "description": model.model_fields["root"].description or key.get("description", "")}
    required = [n for n in properties if all(n in s.get("required", []) for s in schemas.values())]
    out = {"title": model.__name__, "type": "object", "properties": properties, "required": required}
    if model.__doc__:
        out["description"] = model.__doc__.strip()
    return {**out, **({"$defs": defs} if defs else {})}
