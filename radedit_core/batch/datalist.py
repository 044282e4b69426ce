"""Datalists: the rows of a JSON (MONAI-style) or CSV file, and the problems found in them.

Every reader (stress build, batch runs, the bundle, ``radedit stress run``)
goes through :func:`read_datalist` and so follows one rule
(:data:`~radedit_core.settings.DATALIST_RULE`): a JSON object of lists
(``{"training": [...], "validation": [...], "testing": [...]}``) is read
whole, every list in that order, unless ``split`` names the lists to read; a
plain list, a lone ``items``/``data`` list and a CSV are read whole.  The
console is told which lists were read and how many rows each gave
(:meth:`Datalist.describe`), and errors that concern the rows as a whole say
the same.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, RadEditError
from ..settings import DATALIST_LISTS, is_missing, parse_split

_MAX_REPORTED = 20

@dataclass
class Row:
    """One datalist row as read: ``number`` is 1-based over the data rows."""

    number: int
    values: dict[str, Any]
    where: str  # "row 3" / "row 3 (line 4)" / "testing row 3"
    #: the list of a MONAI datalist the row came from (None for a plain list or a CSV)
    split: str | None = None


class Datalist(list):
    """The rows read (a list of :class:`Row`), with ``lists``: each list read and its row count."""

    def __init__(self, rows: Sequence[Row], path: Path, lists: dict[str, int] | None, chosen: bool):
        super().__init__(rows)
        self.path = path
        self.lists = lists  # None: a plain list or a CSV
        self.chosen = chosen  # the lists were named (split), not the default

    def describe(self) -> str:
        """``read lists training (32 rows), validation (4 rows), testing (4 rows)`` or ``read 40 rows``."""
        if self.lists is None:
            return f"read {len(self)} row{'s' * (len(self) != 1)}"
        parts = ", ".join(f"{name} ({count} row{'s' * (count != 1)})" for name, count in self.lists.items())
        how = "as split chose" if self.chosen else "every list, the default; split chooses"
        return f"read list{'s' * (len(self.lists) != 1)} {parts} ({how})"

    def announce(self) -> None:
        """Tell the console (stderr, rank 0 only) which rows were read."""
        if os.environ.get("RANK", "0") == "0":
            print(f"datalist {self.path}: {self.describe()}", file=sys.stderr, flush=True)


def _json_lists(data: dict, path: Path, split: list[str] | None) -> tuple[list[tuple[str | None, list]], bool]:
    lists = {k: v for k, v in data.items() if isinstance(v, list)}
    if split is not None:
        missing = [name for name in split if name not in lists]
        if missing:
            have = ", ".join(lists) or "none"
            raise InputError(path, f"split: no list '{missing[0]}' in the datalist (its lists: {have})")
        return [(name, lists[name]) for name in split], True
    monai = [k for k in DATALIST_LISTS if k in lists]
    if monai:
        return [(k, lists[k]) for k in monai], False
    plain = [k for k in ("items", "data") if k in lists]
    if len(plain) == 1:
        return [(plain[0], lists[plain[0]])], False
    raise InputError(path, f"expected a list of rows, or an object with lists of rows ({', '.join(DATALIST_LISTS)}, or one 'items' list)")


def read_datalist(path: str | Path, split: Any = None, announce: bool = False) -> Datalist:
    """Rows of a JSON or CSV (with a header) datalist, by the one rule (module docstring).

    Args:
        path: a ``.json`` (a list of rows, ``{"items": [...]}``, or a MONAI
            ``{"training": [...], "validation": [...], "testing": [...]}``) or ``.csv``/``.tsv``.
        split: the lists of a JSON object to read (``"testing"``,
            ``"training,validation"``, a list); None: every list.
        announce: print which lists were read and their row counts to stderr now (readers
            call :meth:`Datalist.announce` once their rows check out).

    Raises:
        InputError: naming the file: missing, unreadable, malformed, a named list it lacks, no rows.
        ConfigError: a malformed ``split``.
    """
    path = Path(path)
    names = parse_split(split)
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
        lists: dict[str, int] | None = None
        chosen = False
        if isinstance(data, dict):
            parts, chosen = _json_lists(data, path, names)
            lists = {name: len(entries) for name, entries in parts}
            several = len(parts) > 1 or parts[0][0] in DATALIST_LISTS
        elif isinstance(data, list):
            if names is not None:
                raise InputError(path, f"split {','.join(names)}: the datalist is one plain list of rows, it has no lists to choose")
            parts, several = [(None, data)], False
        else:
            raise InputError(path, "expected a list of rows (objects)")
        rows = []
        number = 0
        for name, entries in parts:
            for k, entry in enumerate(entries, start=1):
                where = f"{name} row {k}" if several else f"row {k}"
                if not isinstance(entry, dict):
                    raise InputError(path, f"{where}: expected an object with image, edit_mask, keep_mask, prompt")
                number += 1
                rows.append(Row(number, dict(entry), where, name if several else None))
    elif suffix in (".csv", ".tsv"):
        if names is not None:
            raise InputError(path, f"split {','.join(names)}: a CSV datalist has no lists to choose")
        lists, chosen = None, False
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
    out = Datalist(rows, path, lists, chosen)
    if not rows:
        raise InputError(path, f"the datalist has no rows ({out.describe()})")
    if announce:
        out.announce()
    return out


class Problems(list):
    """Problems found in rows, reported together; a lone kind of problem keeps its error class."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: set[type[RadEditError]] = set()

    def add(self, where: str, problem: Any, kind: type[RadEditError] = InputError) -> None:
        text = str(problem)
        if where:
            # A message whose names already carry the row (row_name: "row 3: output") names it once, in front.
            text = f"{where}: {text.replace(f'{where}: ', '')}"
        self.append(text)
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


