"""Search spaces: a declarative YAML file parsed once into a :class:`Space`.

File format (``search_spaces/*.yaml``)::

    description: Plain 1-D CNN on ECG windows
    models:                       # one family = fixed; several = a categorical parameter "model"
      cnn1d:                      # architecture parameters apply only when this family is chosen
        depth: {type: int, low: 2, high: 5}
        width: {type: categorical, choices: [16, 32, 64]}
        dropout: 0.1              # a plain value is fixed
      searched1d:                 # a list argument built element by element: `repeat` (count) and `each`
        stages:
          repeat: {type: int, low: 1, high: 3}
          each:
            width: {type: categorical, choices: [8, 16]}
            blocks: {repeat: {type: int, low: 0, high: 2}, each: {op: {type: categorical, choices: [conv, gru]}}}
    optim:
      lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      batch_size: {type: categorical, choices: [32, 64]}
    data:                         # optional: the input representation (overrides the experiment's data keys)
      channels: {type: categorical, choices: [[bvp], [bvp, bvp_ibi], [bvp, hr]]}   # channel sets
      window_s: {type: categorical, choices: [30.0, 60.0]}
      normalize: {type: categorical, choices: [subject, window]}
    augment:                      # optional: training-time augmentations (ape_nas.augment), options fixed or searched
      time_warp: {p: 0.5, max_stretch: {type: float, low: 0.05, high: 0.2}}
      jitter: {sigma: 0.05}

A repeat's backend names are positional (``searched1d.stages.n``, ``searched1d.stages.0.width``,
``searched1d.stages.0.blocks.1.op``): parameters of an element exist only when the element does (define-by-run).
Parameter names seen by the backend are ``model``, ``<family>.<arch param>``, ``optim.<name>``,
``data.<key>`` and ``augment.<name>.<option>``, so two families never share a distribution. A channel set is
suggested by its label (``bvp+bvp_ibi``: backends take scalar choices only) and lands in the spec as the list.
``data`` keys are those of :data:`~ape_nas.spec.INPUT_KEYS`, checked against the experiment schema's fields;
each value gives its own windows, cached under its own fingerprint. :meth:`Space.suggest` works with anything offering
``suggest_int / suggest_float / suggest_categorical`` (an Optuna trial; Ray Tune through OptunaSearch's
define-by-run); :meth:`Space.to_spec` turns those values into a :class:`~ape_nas.spec.TrialSpec`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ape_nas import augment as augmentations
from ape_nas.config.experiment import SECTIONS
from ape_nas.errors import UnknownNameError
from ape_nas.schema import Field, check_mapping, check_value, describe, is_kind, unknown_key_error
from ape_nas.spec import INPUT_KEYS, OPTIM_FIELDS, TrialSpec
from ape_nas.yamlio import Document, KeyPath, load_yaml

_SCALAR = (type(None), bool, int, float, str)


class Suggester(Protocol):
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Param:
    """A searched parameter (``kind`` int, float or categorical) or a fixed value (``kind`` fixed)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    value: Any = None
    values: tuple[Any, ...] = ()  # what each choice stands for, when the choices are labels (channel sets)

    def decode(self, suggested: Any) -> Any:
        """The value a suggested choice stands for (a channel set's list for its label), else the value itself."""
        if self.values and suggested in self.choices:
            return list(self.values[self.choices.index(suggested)])
        return suggested

    def suggest(self, suggester: Suggester) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "int":
            return suggester.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.kind == "float":
            return suggester.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)
        return suggester.suggest_categorical(self.name, list(self.choices))

    def values_for_check(self) -> list[Any]:
        """Representative values (bounds or choices) used to check types against the model signature."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step else ""
        return f"{self.kind} [{self.low}, {self.high}{step}{scale}]"


@dataclass(frozen=True)
class Repeat:
    """A list argument built element by element: ``count`` elements (searched or fixed), each element a mapping
    whose values are parameters or nested repeats (``each``).

    Backend names are positional: the count is ``<name>.n``, element ``i``'s key ``k`` is ``<name>.<i>.<k>`` (a
    nested repeat ``<name>.<i>.<k>.n`` ...), so a block's parameters exist only for the blocks that exist. Keys
    the space leaves out take the value of the family default's first element (its template).
    """

    name: str
    count: Param
    each: dict[str, Param | Repeat]

    def suggest(self, suggester: Suggester, values: dict[str, Any], prefix: str | None = None) -> None:
        """Ask for the count, then every element's parameters, into ``values`` (flat backend names)."""
        prefix = prefix or self.name
        n = replace(self.count, name=f"{prefix}.n").suggest(suggester)
        values[f"{prefix}.n"] = n
        for i in range(int(n)):
            for key, node in self.each.items():
                name = f"{prefix}.{i}.{key}"
                if isinstance(node, Repeat):
                    node.suggest(suggester, values, name)
                else:
                    values[name] = replace(node, name=name).suggest(suggester)

    def assemble(
        self, values: Mapping[str, Any], template: Mapping[str, Any], prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """The list argument from flat values; ``template`` (the default's first element) fills the other keys."""
        prefix = prefix or self.name
        out: list[dict[str, Any]] = []
        for i in range(int(values[f"{prefix}.n"])):
            element = copy.deepcopy(dict(template))
            for key, node in self.each.items():
                name = f"{prefix}.{i}.{key}"
                if isinstance(node, Repeat):
                    inner = template.get(key) or [{}]
                    element[key] = node.assemble(values, inner[0], name)
                else:
                    element[key] = values[name]
            out.append(element)
        return out

    def parameters(self, prefix: str | None = None) -> list[Param]:
        """The count and the element parameters, named with ``*`` for the element index (for listings)."""
        prefix = prefix or self.name
        out = [replace(self.count, name=f"{prefix}.n")]
        for key, node in self.each.items():
            if isinstance(node, Repeat):
                out += node.parameters(f"{prefix}.*.{key}")
            else:
                out.append(replace(node, name=f"{prefix}.*.{key}"))
        return out

    def describe(self) -> str:
        return f"repeat {self.count.describe()}"


Node = Param | Repeat


@dataclass(frozen=True)
class Space:
    """A parsed search space. ``families`` maps each family to its architecture parameters."""

    name: str
    path: str
    description: str
    families: dict[str, dict[str, Node]]  # family -> "<family>.<arg>" -> parameter or repeat
    optim: dict[str, Param]
    doc: Document = field(repr=False, compare=False)
    data: dict[str, Param] = field(default_factory=dict)  # "data.<key>" -> parameter
    augment: dict[str, dict[str, Param]] = field(default_factory=dict)  # name -> "augment.<name>.<option>" -> param

    @property
    def family_names(self) -> list[str]:
        return list(self.families)

    def parameters(self) -> list[Param]:
        out = [q for ps in self.families.values() for p in ps.values() for q in _flat(p)]
        out += [*self.optim.values(), *self.data.values()]
        return out + [p for ps in self.augment.values() for p in ps.values()]

    def suggest(self, suggester: Suggester) -> dict[str, Any]:
        """Ask the suggester for one point; returns flat values keyed by backend parameter name."""
        names = self.family_names
        family = names[0] if len(names) == 1 else suggester.suggest_categorical("model", names)
        values: dict[str, Any] = {"model": family}
        for p in self.families[family].values():
            if isinstance(p, Repeat):
                p.suggest(suggester, values)
            else:
                values[p.name] = p.suggest(suggester)
        for p in self.optim.values():
            values[p.name] = p.suggest(suggester)
        for p in self.data.values():
            values[p.name] = p.suggest(suggester)
        for params in self.augment.values():
            for p in params.values():
                values[p.name] = p.suggest(suggester)
        return values

    def to_spec(
        self,
        values: Mapping[str, Any],
        base: Mapping[str, Any],
        arch_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> TrialSpec:
        """Build a TrialSpec from flat values (as returned by :meth:`suggest`) and the experiment's base config.

        ``base`` holds ``data``, ``protocol``, ``training`` and ``seed``. ``arch_defaults`` (family → its
        architecture defaults, :func:`ape_nas.models.arch_defaults`) fills the arguments the space leaves out,
        so the spec describes the whole network, not only what was sampled. ``data.<key>`` values replace the
        base's (numbers as the schema's type: ``30`` and ``30.0`` are one cache entry); every augmentation of
        the space lands in ``spec.augment`` with all its options.
        """
        family = values["model"]
        arch = dict((arch_defaults or {}).get(family, {}))
        for name, node in self.families.get(family, {}).items():
            arg = name.split(".", 1)[1]
            if isinstance(node, Repeat):
                default = arch.get(arg)
                arch[arg] = node.assemble(values, default[0] if isinstance(default, list) and default else {})
            elif name in values:
                arch[arg] = values[name]
        optim = {name: spec.default for name, spec in OPTIM_FIELDS.items()}
        optim.update({k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("optim.")})
        data = dict(base["data"])
        for key, field_ in INPUT_FIELDS.items():
            name = f"data.{key}"
            if name in values:
                param = self.data.get(name)
                data[key] = _typed(param.decode(values[name]) if param else values[name], field_)
        augment: dict[str, dict[str, Any]] = {}
        for aug in self.augment:
            options = augmentations.AUGMENTATIONS[aug].options
            chosen = {k.rsplit(".", 1)[1]: v for k, v in values.items() if k.startswith(f"augment.{aug}.")}
            augment[aug] = {k: _typed(chosen.get(k, f.default), f) for k, f in options.items()}
        return TrialSpec(
            model=family,
            arch=arch,
            optim=optim,
            data=data,
            protocol=dict(base["protocol"]),
            training=dict(base["training"]),
            seed=int(base["seed"]),
            augment=augment,
        )

    def sample(
        self,
        suggester: Suggester,
        base: Mapping[str, Any],
        arch_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> TrialSpec:
        return self.to_spec(self.suggest(suggester), base, arch_defaults)

    def check_inputs(self, data: Mapping[str, Any]) -> None:
        """Cross-check the space's ``data`` values against the experiment's ``data`` section: every window length
        must fit every stride (a stride at most 4 window lengths, as the experiment schema requires)."""
        windows = _candidates(self.data.get("data.window_s"), data.get("window_s"))
        strides = _candidates(self.data.get("data.stride_s"), data.get("stride_s"))
        if windows and strides and max(strides) > 4 * min(windows):
            key = "window_s" if "data.window_s" in self.data else "stride_s"
            raise self.doc.error(
                ("data", key),
                f"window_s {min(windows):g} s with stride_s {max(strides):g} s (space or experiment): "
                "expected a stride no longer than 4 window lengths",
            )

    def check_families(self, arch_defaults: Mapping[str, Mapping[str, Any]]) -> None:
        """Check families and their parameter names/types against the model registry's signatures; a repeat's
        element keys against the first element of the family's default list (its template)."""
        for family, params in self.families.items():
            keypath: KeyPath = ("models", family)
            if family not in arch_defaults:
                err = UnknownNameError("model family", family, list(arch_defaults))
                raise self.doc.error(keypath, str(err))
            defaults = arch_defaults[family]
            for pname, param in params.items():
                arg = pname.split(".", 1)[1]
                if arg not in defaults:
                    raise unknown_key_error(self.doc, keypath, arg, list(defaults))
                self._check_node((*keypath, arg), family, param, defaults[arg])

    def _check_node(self, keypath: KeyPath, family: str, node: Node, default: Any) -> None:
        if isinstance(node, Repeat):
            if not isinstance(default, list) or not default or not isinstance(default[0], dict):
                raise self.doc.error(
                    (*keypath, "repeat"), f"{family}.{keypath[-1]} is not a list of mappings: it cannot be repeated"
                )
            template = default[0]
            for key, child in node.each.items():
                if key not in template:
                    raise unknown_key_error(self.doc, (*keypath, "each"), key, list(template))
                self._check_node((*keypath, "each", key), family, child, template[key])
            return
        if default is None:
            return
        kind = float if isinstance(default, float) else type(default)
        for v in node.values_for_check():
            if not is_kind(v, kind):
                expected = f"expected values of type {kind.__name__} for {family}"
                raise self.doc.error(keypath, f"{expected}, got {describe(v)}")


def _flat(node: Node) -> list[Param]:
    return node.parameters() if isinstance(node, Repeat) else [node]


_PARAM_KEYS = {
    "type": Field(str, choices=("int", "float", "categorical")),
    "low": Field(object, None, nullable=True),  # int or float by type: checked in _parse_param
    "high": Field(object, None, nullable=True),
    "step": Field(float, None, nullable=True),
    "log": Field(bool, False),
    "choices": Field(list, None, nullable=True),
}


def _parse_param(doc: Document, keypath: KeyPath, name: str, raw: Any, value_field: Field | None) -> Param:
    if not isinstance(raw, dict):
        if value_field is not None:
            check_value(doc, keypath, raw, value_field)
        elif not isinstance(raw, _SCALAR):
            raise doc.error(keypath, f"expected a fixed scalar value or a parameter mapping, got {describe(raw)}")
        return Param(name=name, kind="fixed", value=raw)
    d = check_mapping(doc, keypath, raw, _PARAM_KEYS)
    kind = d["type"]
    if kind == "categorical":
        for key in ("low", "high", "step"):
            if d[key] is not None:
                raise doc.error((*keypath, key), "not allowed for a categorical parameter (use choices)")
        choices = d["choices"]
        if not choices:
            raise doc.error((*keypath, "choices"), "empty choices: expected a non-empty list of values")
        for i, c in enumerate(choices):
            if not isinstance(c, _SCALAR):
                raise doc.error((*keypath, "choices", i), f"expected a scalar choice, got {describe(c)}")
            if value_field is not None:
                check_value(doc, (*keypath, "choices", i), c, value_field)
        if len(set(map(repr, choices))) != len(choices):
            raise doc.error((*keypath, "choices"), "choices repeat a value")
        return Param(name=name, kind="categorical", choices=tuple(choices))
    if d["choices"] is not None:
        raise doc.error((*keypath, "choices"), f"not allowed for a {kind} parameter (use low/high)")
    number = int if kind == "int" else float
    for key in ("low", "high"):
        if raw.get(key) is None:
            raise doc.error((*keypath, key), f"missing required key for a {kind} parameter")
        if not is_kind(raw[key], number):
            expected = "an integer" if number is int else "a number"
            raise doc.error(
                (*keypath, key),
                f"expected {expected} for a{'n' if kind == 'int' else ''} {kind} parameter, got {describe(raw[key])}",
            )
    if d["log"] and raw["low"] <= 0:
        raise doc.error((*keypath, "low"), f"log scale needs low > 0, got {raw['low']}")
    if value_field is not None:
        for key in ("low", "high"):
            check_value(doc, (*keypath, key), number(raw[key]), value_field)
    low, high, step, log = d["low"], d["high"], d["step"], d["log"]
    if low > high:
        raise doc.error(keypath, f"empty range: low {raw['low']} > high {raw['high']}; expected low <= high")
    if step is not None:
        if step <= 0 or (kind == "int" and not is_kind(raw["step"], int)):
            raise doc.error((*keypath, "step"), f"expected a positive {'integer' if kind == 'int' else 'number'}")
        if log and (kind == "float" or step != 1):
            raise doc.error((*keypath, "step"), "step cannot be combined with log: true")
    if kind == "int":
        return Param(name=name, kind="int", low=int(low), high=int(high), step=int(step) if step else None, log=log)
    return Param(name=name, kind="float", low=low, high=high, step=step, log=log)


_REPEAT_KEYS = ("repeat", "each")


def _parse_node(doc: Document, keypath: KeyPath, name: str, raw: Any) -> Node:
    """An architecture argument: a fixed value, a parameter, or ``{repeat: COUNT, each: {...}}``."""
    if not (isinstance(raw, dict) and ("repeat" in raw or "each" in raw)):
        return _parse_param(doc, keypath, name, raw, None)
    for key in raw:
        if key not in _REPEAT_KEYS:
            raise unknown_key_error(doc, keypath, key, list(_REPEAT_KEYS))
    for key in _REPEAT_KEYS:
        if key not in raw:
            what = "the number of elements (an int or {type: int, low, high})" if key == "repeat" else "a mapping"
            raise doc.error(keypath, f"missing key {key!r} of a repeat: expected {what}")
    count = _parse_param(doc, (*keypath, "repeat"), f"{name}.n", raw["repeat"], _COUNT)
    if count.kind not in ("fixed", "int"):
        raise doc.error((*keypath, "repeat"), f"expected an int or {{type: int, low, high}}, got a {count.kind}")
    each = raw["each"]
    if not isinstance(each, dict) or not each:
        raise doc.error((*keypath, "each"), f"expected a non-empty mapping of element keys, got {describe(each)}")
    children = {key: _parse_node(doc, (*keypath, "each", key), key, value) for key, value in each.items()}
    return Repeat(name=name, count=count, each=children)


_COUNT = Field(int, low=0, high=64)  # elements of a repeat


_SPACE_KEYS = {
    "name": Field(str, None, nullable=True),
    "description": Field(str, ""),
    "models": Field(dict),
    "optim": Field(dict, dict),
    "data": Field(dict, dict),
    "augment": Field(dict, dict),
}

# The experiment schema's fields of the data keys a space may set (checked as in an experiment file).
INPUT_FIELDS: dict[str, Field] = {key: SECTIONS["data"][key] for key in INPUT_KEYS}


def _typed(value: Any, spec: Field) -> Any:
    """A number as its field's type (``30`` → ``30.0`` for a float key), so equal values give equal specs."""
    if spec.kind is float and is_kind(value, float):
        return float(value)
    return list(value) if isinstance(value, list | tuple) else value


def _candidates(param: Param | None, fallback: Any) -> list[float]:
    values = param.values_for_check() if param is not None else [fallback]
    return [float(v) for v in values if is_kind(v, float)]


def _channel_set(doc: Document, keypath: KeyPath, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise doc.error(keypath, f"expected a non-empty list of channel names, got {describe(value)}")
    if len(set(value)) != len(value):
        raise doc.error(keypath, f"channel {next(c for c in value if value.count(c) > 1)!r} repeats")
    return tuple(value)


def _parse_channels(doc: Document, keypath: KeyPath, raw: Any) -> Param:
    """``channels``: a fixed list, or ``{type: categorical, choices: [[bvp], [bvp, hr]]}`` (lists of names)."""
    name = "data.channels"
    if not isinstance(raw, dict):
        return Param(name=name, kind="fixed", value=list(_channel_set(doc, keypath, raw)))
    d = check_mapping(doc, keypath, raw, _PARAM_KEYS)
    if d["type"] != "categorical":
        raise doc.error((*keypath, "type"), "expected categorical: channels are chosen among channel sets")
    for key in ("low", "high", "step"):
        if d[key] is not None:
            raise doc.error((*keypath, key), "not allowed for a categorical parameter (use choices)")
    if not d["choices"]:
        raise doc.error((*keypath, "choices"), "empty choices: expected a non-empty list of channel lists")
    sets = [_channel_set(doc, (*keypath, "choices", i), c) for i, c in enumerate(d["choices"])]
    labels = ["+".join(s) for s in sets]
    if len(set(labels)) != len(labels):
        raise doc.error((*keypath, "choices"), "choices repeat a channel set")
    return Param(name=name, kind="categorical", choices=tuple(labels), values=tuple(sets))


def _parse_data(doc: Document, section: dict[str, Any]) -> dict[str, Param]:
    out: dict[str, Param] = {}
    for key, raw in section.items():
        keypath: KeyPath = ("data", key)
        if key not in SECTIONS["data"]:
            raise unknown_key_error(doc, ("data",), key, list(INPUT_FIELDS))
        if key not in INPUT_FIELDS:
            raise doc.error(
                keypath,
                f"not set by a search space (the experiment file's data section sets it); a space may set "
                f"{', '.join(INPUT_FIELDS)}",
            )
        if key == "channels":
            out["data.channels"] = _parse_channels(doc, keypath, raw)
        else:
            out[f"data.{key}"] = _parse_param(doc, keypath, f"data.{key}", raw, INPUT_FIELDS[key])
    return out


def _parse_augment(doc: Document, section: dict[str, Any]) -> dict[str, dict[str, Param]]:
    out: dict[str, dict[str, Param]] = {}
    for aug, block in section.items():
        keypath: KeyPath = ("augment", aug)
        if aug not in augmentations.AUGMENTATIONS:
            raise unknown_key_error(doc, ("augment",), aug, list(augmentations.AUGMENTATIONS))
        if block is None:
            block = {}
        if not isinstance(block, dict):
            raise doc.error(keypath, f"expected a mapping of options (or nothing: all defaults), got {describe(block)}")
        options = augmentations.AUGMENTATIONS[aug].options
        params: dict[str, Param] = {}
        for key, raw in block.items():
            if key not in options:
                raise unknown_key_error(doc, keypath, key, list(options))
            name = f"augment.{aug}.{key}"
            params[name] = _parse_param(doc, (*keypath, key), name, raw, options[key])
        out[aug] = params
    return out


def parse_space(doc: Document) -> Space:
    top = check_mapping(doc, (), doc.data, _SPACE_KEYS)
    if not top["models"]:
        raise doc.error(("models",), "expected at least one model family")
    families: dict[str, dict[str, Param]] = {}
    for family, block in top["models"].items():
        keypath: KeyPath = ("models", family)
        if block is None:
            block = {}
        if not isinstance(block, dict):
            raise doc.error(keypath, f"expected a mapping of architecture parameters, got {describe(block)}")
        families[family] = {
            f"{family}.{arg}": _parse_node(doc, (*keypath, arg), f"{family}.{arg}", raw) for arg, raw in block.items()
        }
    optim: dict[str, Param] = {}
    for key, raw in (top["optim"] or {}).items():
        if key not in OPTIM_FIELDS:
            raise unknown_key_error(doc, ("optim",), key, list(OPTIM_FIELDS))
        optim[f"optim.{key}"] = _parse_param(doc, ("optim", key), f"optim.{key}", raw, OPTIM_FIELDS[key])
    name = top["name"] or Path(doc.path).stem
    return Space(
        name=name,
        path=doc.path,
        description=top["description"],
        families=families,
        optim=optim,
        doc=doc,
        data=_parse_data(doc, top["data"] or {}),
        augment=_parse_augment(doc, top["augment"] or {}),
    )


def load_space(path: str | Path) -> Space:
    """Parse a search-space file; every problem is a ConfigError naming file, line and key."""
    return parse_space(load_yaml(path))
