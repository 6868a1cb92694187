"""Content fingerprints of raw data files, with a stat memo so unchanged files are not re-read.

Like git's index: a file whose (size, mtime_ns) match the memo keeps its recorded SHA-256; any change to a file
changes its stat and is re-hashed, so a changed file always changes the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class HashMemo:
    """``{absolute path: [size, mtime_ns, sha256]}`` kept in a JSON file (written atomically)."""

    def __init__(self, memo_file: Path | None) -> None:
        self.file = memo_file
        self.data: dict[str, list[Any]] = {}
        if memo_file is not None and memo_file.is_file():
            try:
                self.data = json.loads(memo_file.read_text())
            except (OSError, ValueError):
                self.data = {}
        self.dirty = False

    def digest(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.data.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = _sha256(path)
        self.data[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.file is None or not self.dirty:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".hashes.")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh)
        os.replace(tmp, self.file)
        self.dirty = False


def content_fingerprint(roots: Iterable[Path], memo: HashMemo) -> str:
    """SHA-256 over (relative name, content hash) of every file under the given files/folders."""
    h = hashlib.sha256()
    for root in roots:
        for f in _files(root):
            rel = f.name if root.is_file() else str(f.relative_to(root))
            h.update(f"{rel}\0{memo.digest(f)}\n".encode())
    return h.hexdigest()


def source_roots(params: dict[str, Any], path_params: tuple[str, ...]) -> list[Path]:
    """Existing files/folders named by a loader's path-like parameters."""
    roots = []
    for key in path_params:
        value = params.get(key)
        if isinstance(value, str) and value and Path(value).exists():
            roots.append(Path(value))
    return roots
