"""Datalists: the rows of a JSON (MONAI-style) or CSV file, and the problems found in them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, RadEditError
from ..settings import is_missing

_MAX_REPORTED = 20

@dataclass
class Row:
    """One datalist row as read: ``number`` is 1-based over the data rows."""

    number: int
    values: dict[str, Any]
    where: str  # "row 3" / "row 3 (line 4)"


def read_datalist(path: str | Path) -> list[Row]:
    """Rows of a JSON (a list of objects, or ``{"items": [...]}``) or CSV (with a header) datalist."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "datalist does not exist" if not path.exists() else "datalist is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the datalist ({exc})") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            # MONAI datalists keep their rows under a key ("testing" in decathlon lists).
            keys = [k for k in ("items", "data", "testing") if isinstance(data.get(k), list)]
            if len(keys) != 1:
                raise InputError(path, 'expected a list of rows, or an object with one "items" list')
            data = data[keys[0]]
        if not isinstance(data, list):
            raise InputError(path, "expected a list of rows (objects)")
        rows = []
        for k, entry in enumerate(data, start=1):
            if not isinstance(entry, dict):
                raise InputError(path, f"row {k}: expected an object with image, edit_mask, keep_mask, prompt")
            rows.append(Row(k, dict(entry), f"row {k}"))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames:
            raise InputError(path, "empty CSV (a header row naming the columns is needed)")
        header = [h.strip() for h in reader.fieldnames]
        if len(set(header)) != len(header):
            raise InputError(path, f"repeated column names in the header {header}")
        rows = []
        for k, record in enumerate(reader, start=1):
            if None in record:
                raise InputError(path, f"row {k} (line {reader.line_num}): more values than header columns")
            values = {key.strip(): (v.strip() if isinstance(v, str) else v) for key, v in record.items()}
            if all(is_missing(v) for v in values.values()):
                continue  # blank lines in spreadsheets exports
            rows.append(Row(k, values, f"row {k} (line {reader.line_num})"))
    else:
        raise InputError(path, f"unsupported datalist type '{suffix}'; use .json or .csv")
    if not rows:
        raise InputError(path, "the datalist has no rows")
    return rows


class Problems(list):
    """Problems found in rows, reported together; a lone kind of problem keeps its error class."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: set[type[RadEditError]] = set()

    def add(self, where: str, problem: Any, kind: type[RadEditError] = InputError) -> None:
        self.append(f"{where}: {problem}" if where else str(problem))
        self.kinds.add(type(problem) if isinstance(problem, RadEditError) else kind)

    def raise_if_any(self, source: str | Path | None) -> None:
        if self:
            raise self.exception(source)

    def exception(self, source: str | Path | None) -> RadEditError:
        return _errors_to_exception(source, self, self.kinds.pop() if len(self.kinds) == 1 else None)


def _errors_to_exception(
    source: str | Path | None, errors: Sequence[str], kind: type[RadEditError] | None = None
) -> RadEditError:
    """One error naming ``source`` (the datalist) and each bad row; ``kind`` keeps a lone error's class."""
    shown = list(errors[:_MAX_REPORTED])
    if len(errors) > _MAX_REPORTED:
        shown.append(f"... and {len(errors) - _MAX_REPORTED} more")
    problem = shown[0] if len(errors) == 1 else f"{len(errors)} problems:\n  " + "\n  ".join(shown)
    kind = kind or InputError
    if issubclass(kind, InputError):
        return kind(source, problem)
    return kind(problem if source is None else f"{source}: {problem}")


