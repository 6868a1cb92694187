"""``ape-nas models`` (registered model families) and ``ape-nas spaces`` (search-space files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ape_nas.commands.common import Command, console
from ape_nas.errors import UserError


def models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


def run_models(args: argparse.Namespace) -> int:
    from ape_nas.models import get_family, list_models
    from ape_nas.models.ops import OPS, op_params

    families = [get_family(n) for n in list_models()]
    ops = {name: {"description": _first_line(cls.__doc__), "params": op_params(name)} for name, cls in OPS.items()}
    if args.json:
        out = {f.name: {"description": f.description, "arch": f.arch_defaults} for f in families}
        out["searched1d"]["operations"] = ops  # the registry its genome's blocks choose from
        print(json.dumps(out, indent=2, default=str))
        return 0
    from rich.table import Table

    table = Table(title="model families")
    for col in ("name", "description", "architecture arguments (defaults)"):
        table.add_column(col)
    for f in families:
        table.add_row(f.name, f.description, ", ".join(f"{k}={v!r}" for k, v in f.arch_defaults.items()))
    console().print(table)
    ops_table = Table(title="operations of searched1d blocks (models/ops/)")
    for col in ("op", "description", "parameters (defaults)"):
        ops_table.add_column(col)
    for name, op in ops.items():
        ops_table.add_row(name, op["description"], ", ".join(f"{k}={v!r}" for k, v in op["params"].items()) or "—")
    console().print(ops_table)
    return 0


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


def spaces_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default="search_spaces", help="folder of space files")
    p.add_argument("--json", action="store_true")


def run_spaces(args: argparse.Namespace) -> int:
    from ape_nas.space import load_space

    folder = Path(args.dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (expected the folder holding search-space YAML files)")
    spaces = [load_space(p) for p in sorted(folder.glob("*.yaml"))]
    if args.json:
        print(
            json.dumps(
                {
                    s.name: {
                        "path": s.path,
                        "description": s.description,
                        "families": s.family_names,
                        "parameters": {p.name: p.describe() for p in s.parameters()},
                    }
                    for s in spaces
                },
                indent=2,
            )
        )
        return 0
    from rich.table import Table

    table = Table(title=f"search spaces in {folder}")
    for col in ("name", "families", "searched parameters", "description"):
        table.add_column(col)
    for s in spaces:
        searched = [p for p in s.parameters() if p.kind != "fixed"]
        table.add_row(s.name, ", ".join(s.family_names), str(len(searched) + (len(s.families) > 1)), s.description)
    console().print(table)
    return 0


MODELS = Command("models", "registered model families and their architecture arguments", models_arguments, run_models)
SPACES = Command("spaces", "search-space files and their parameters", spaces_arguments, run_spaces)
