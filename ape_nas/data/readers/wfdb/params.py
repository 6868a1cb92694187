"""The ``wfdb`` loader's parameters: the schema of each, and the rules that tie one to another."""

from __future__ import annotations

import math
import re
from typing import Any

from ape_nas.data.readers import params as reader_params
from ape_nas.data.readers.params import names
from ape_nas.schema import Field, ParamKeys

LABEL_MODES = ("none", "annotations", "marker", "table")
DRIVEDB_ROUTE = ("rest", "city", "highway", "city", "highway", "city", "rest")


def _text(value: str) -> str | None:
    return None if value else "expected a non-empty string"


def _class_name_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


def _subject_of(value: Any) -> str | None:
    if isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(v, str) or not v]
        return f"{bad[0]} must be a subject id, got {value[bad[0]]!r}" if bad else None
    if not isinstance(value, str):
        return f"expected a mapping record -> subject or a regular expression, got {value!r}"
    try:
        re.compile(value)
    except re.error as exc:
        return f"{value!r} is not a regular expression ({exc})"
    return None


def _annotation_classes(value: dict) -> str | None:
    bad = [k for k, v in value.items() if not _class_name_or_null(v)]
    return f"{bad[0]} must be a class name or null, got {value[bad[0]]!r}" if bad else None


def _marker_classes(value: Any) -> str | None:
    if isinstance(value, str):
        return None if value == "drivedb" else f"expected a list, a mapping or 'drivedb', got {value!r}"
    lists = value.items() if isinstance(value, dict) else [("", value)]
    for key, lst in lists:
        where = f"{key}: " if key else ""
        if not isinstance(lst, list | tuple) or not lst:
            return f"{where}expected a non-empty list of class names or nulls, got {lst!r}"
        if not all(_class_name_or_null(v) for v in lst):
            return f"{where}expected class names or nulls, got {list(lst)!r}"
    return None


def _frame_rates(value: dict) -> str | None:
    for rec, fs in value.items():
        if isinstance(fs, bool) or not isinstance(fs, int | float) or not (math.isfinite(fs) and fs > 0):
            return f"{rec} must be a positive frame rate in Hz, got {fs!r}"
    return None


FIELDS = {
    "path": reader_params.path("the folder holding the database's .hea and .dat files, or one record's .hea file"),
    "records": Field(list, None, nullable=True, check=names()),
    "channels": Field(list, None, nullable=True, check=names()),
    "labels": Field(str, "none", choices=LABEL_MODES),
    "classes": Field(list, None, nullable=True, check=names()),
    "subject_of": Field(object, None, nullable=True, check=_subject_of, doc="mapping record -> subject, or a regex"),
    "annotator": Field(str, "atr", check=_text, doc="annotation file extension"),
    "annotation_classes": Field(dict, None, nullable=True, check=_annotation_classes),
    "marker_channel": Field(str, "marker", check=_text),
    "marker_classes": Field(object, None, nullable=True, check=_marker_classes, doc="list, mapping or 'drivedb'"),
    "marker_threshold": reader_params.positive(4.0, "physical units above the marker channel's running median"),
    "label_table": reader_params.path("CSV table subject,start,end,label"),
    "fs_override": Field(dict, None, nullable=True, check=_frame_rates, doc="record -> frame rate in Hz"),
    "require_labels": reader_params.REQUIRE_LABELS,
}

# labels mode -> (the parameter it needs, what that parameter must say)
_NEEDS = {
    "annotations": (
        "annotation_classes",
        "labels 'annotations' needs annotation_classes, a mapping from annotation aux notes or symbols to class "
        "names (null = unlabelled), e.g. {'(N': normal, '(AFIB': afib}",
    ),
    "marker": (
        "marker_classes",
        "labels 'marker' needs marker_classes: a list of class names per marker segment in order (null = "
        "unlabelled), a mapping record -> such a list, or 'drivedb'",
    ),
    "table": ("label_table", "labels 'table' needs label_table, the path of a CSV table subject,start,end,label"),
}


def check(given: dict[str, Any]) -> dict[str, Any]:
    """The loader's parameters checked one by one and against each other (a label source needs its parameter)."""
    p = reader_params.check(given, FIELDS)
    if not p["path"]:
        raise ParamKeys().error(("path",), f"required: {FIELDS['path'].doc}")
    key, need = _NEEDS.get(p["labels"], ("", ""))
    if key and not p[key]:
        raise ParamKeys().error((key,), need)
    return p
