"""Print the README's transfer tables from the committed results (``docs/results/transfer.sh`` writes them).

    python docs/results/transfer_table.py

One table per source; a row per method (``source``: the un-adapted network), its trained parameters, and the
balanced accuracy on the test windows with its 95 % subject-bootstrap interval for K = 1, 5, 20 labelled windows
per class in each protocol. ``tests/test_readme.py`` checks every cell of the README against the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {
    "Stress-Predict": HERE / "transfer/stress_predict/transfer.json",
    "generated": HERE / "transfer/synth_pretrained/transfer.json",
}
CELLS = [(p, k) for p in ("personalise", "new-population") for k in (1, 5, 20)]


def table(label: str, path: Path) -> str:
    rows = json.loads(path.read_text())["results"]
    head = "| source: method | trained parameters | " + " | ".join(f"{p} K={k}" for p, k in CELLS) + " |"
    lines = [head, "|" + "---|" * (2 + len(CELLS))]
    for method in dict.fromkeys(r["method"] for r in rows):
        by = {(r["protocol"], r["k"]): r for r in rows if r["method"] == method}
        cells = []
        for cell in CELLS:
            iv = by[cell]["balanced_accuracy"]
            cells.append(f"{iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]")
        params = by[CELLS[0]]["trained_parameters"]
        lines.append(f"| {label}: `{method}` | {params:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    for label, path in SOURCES.items():
        if path.is_file():
            print(table(label, path), end="\n\n")


if __name__ == "__main__":
    main()
