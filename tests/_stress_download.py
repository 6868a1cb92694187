"""Stress-Predict laid out as its authors distribute it (not a test module: no test_ prefix).

The download has ``Processed_data/Time_logs.xlsx`` (no csv), ``Questionnaires_scores.xlsx``, ``Readme.docx`` and
ACC/EDA/TEMP files per subject beside BVP/HR/IBI. :func:`download_layout` builds that folder from the shared copy
(symlinks to its files, small E4 files for the sensors the copy lacks); :func:`write_time_logs_xlsx` writes a
time-log table as the authors' spreadsheet (phase names merged over their Start/End cells, real time cells).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import openpyxl


def _cell(text: str, header: str) -> object:
    """A CSV cell as the spreadsheet holds it: times as times, the Date as a date-time, ids as numbers."""
    if not text:
        return None
    if header == "Date":
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:  # a date typed as text (07/02/2022)
            return text
    if header == "Session ID" and text.isdigit():
        return int(text)
    parts = text.split(":")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        try:
            return dt.time(*map(int, parts))
        except ValueError:  # not a clock time (09:75:00): kept as text, as a hand-typed cell would be
            return text
    return text


def write_time_logs_xlsx(path: Path, csv_text: str) -> Path:
    """The time-log table of ``csv_text`` (two header rows, then one row per subject) as an .xlsx workbook."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    names = rows[0]
    book = openpyxl.Workbook()
    sheet = book.active
    for r, row in enumerate(rows, start=1):
        for c, text in enumerate(row, start=1):
            value = (text or None) if r <= 2 else _cell(text, names[c - 1] if c - 1 < len(names) else "")
            if value is not None:
                sheet.cell(row=r, column=c, value=value)
    for c, name in enumerate(names, start=1):
        if name and c < len(rows[1]) and rows[1][c - 1] == "Start":
            sheet.merge_cells(start_row=1, start_column=c, end_row=1, end_column=c + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def _e4_file(path: Path, start: float, rate: float, columns: int) -> None:
    head = ", ".join([f"{start:.6f}"] * columns) + "\n" + ", ".join([f"{rate:.6f}"] * columns) + "\n"
    path.write_text(head + "".join(", ".join(["0.1"] * columns) + "\n" for _ in range(int(rate * 4))))


def download_layout(shared: Path, dest: Path, subjects: list[str] | None = None) -> Path:
    """``dest`` laid out as the Stress-Predict download, its recordings linked from ``shared`` (read-only)."""
    raw = sorted(d for d in (shared / "Raw_data").iterdir() if d.is_dir())
    for folder in raw:
        if subjects is not None and folder.name not in subjects:
            continue
        mine = dest / "Raw_data" / folder.name
        mine.mkdir(parents=True)
        for f in folder.iterdir():
            (mine / f.name).symlink_to(f)
        start = float((folder / "BVP.csv").read_text().split("\n", 1)[0].split(",")[0])
        _e4_file(mine / "ACC.csv", start, 32.0, 3)
        _e4_file(mine / "EDA.csv", start, 4.0, 1)
        _e4_file(mine / "TEMP.csv", start, 4.0, 1)
    processed = dest / "Processed_data"
    processed.mkdir(parents=True)
    for name in ("Improved_All_Combined_hr_rsp_binary.csv", "Time_logs.xlsx"):
        (processed / name).symlink_to(shared / "Processed_data" / name)
    scores = openpyxl.Workbook()
    scores.active.append(["S. ID.", "PSS", "STAI"])
    scores.active.append(["S01", 17, 41])
    scores.save(processed / "Questionnaires_scores.xlsx")
    with zipfile.ZipFile(dest / "Readme.docx", "w") as doc:  # a .docx is a zip of XML parts
        doc.writestr("word/document.xml", "<w:document/>")
    return dest
