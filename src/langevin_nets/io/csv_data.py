"""Reading regression data from CSV files, with one-line error messages for bad files."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from langevin_nets.io.config import InputError, read_input_bytes

_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Table:
    """The text of a CSV file with a header: column names and rows of strings.

    ``line_numbers[i]`` is the file line on which data row ``i`` starts (1-based).
    """

    path: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    line_numbers: list[int]

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def numeric(self, columns: Sequence[str], role: str = "data") -> np.ndarray:
        """The named columns as a finite float matrix ``(rows, len(columns))``.

        Raises
        ------
        InputError
            Naming the column and row of the first value that is not a finite number.
        """
        idx = [self.columns.index(c) for c in columns]
        out = np.empty((self.num_rows, len(idx)), dtype=float)
        for r, row in enumerate(self.rows):
            for j, c in enumerate(idx):
                text = row[c].strip()
                where = (
                    f"column {self.columns[c]!r}, row {r + 1} (line {self.line_numbers[r]}) "
                    f"of {role} file {self.path!r}"
                )
                if text == "":
                    raise InputError(
                        f"missing value in {where}; fill it in or drop the row "
                        "(or leave the column out with --features)"
                    )
                try:
                    v = float(text)
                except ValueError:
                    raise InputError(
                        f"non-numeric value {text!r} in {where}; every feature and the target "
                        "must be numbers (leave other columns out with --features)"
                    ) from None
                if not math.isfinite(v):
                    raise InputError(
                        f"{'NaN' if math.isnan(v) else 'infinite'} value {text!r} in {where}; "
                        "remove or replace NaN and infinite values"
                    )
                out[r, j] = v
        return out


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: str | os.PathLike, role: str = "data", option: str = "--data") -> Table:
    """Read a comma-separated file with a header row.

    Parameters
    ----------
    path : path
    role : str
        ``"data"`` or ``"test"``, used in messages.
    option : str
        The option that named the file, used in messages.

    Raises
    ------
    InputError
        Missing or unreadable file, binary content, no header, ragged rows, fewer than
        two data rows.
    """
    p = Path(path)
    name = str(p)
    raw = read_input_bytes(p, role, option, "a CSV file")
    not_csv = f"{role} file {name!r} is not a CSV file"
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise InputError(f"{not_csv} (it holds binary data); give a comma-separated text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{not_csv} (it is not UTF-8 text); save it as a UTF-8 comma-separated file"
        ) from None
    reader = csv.reader(text.splitlines(keepends=True))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record or all(f.strip() == "" for f in record):
                continue  # blank line
            if header is None:
                header = [f.strip() for f in record]
                header_line = reader.line_num
                continue
            if len(record) != len(header):
                raise InputError(
                    f"{not_csv}: line {reader.line_num} has {len(record)} field(s) but the "
                    f"header (line {header_line}) has {len(header)}; every row needs one value "
                    "per column, separated by commas"
                )
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise InputError(f"{not_csv}: {e} (line {reader.line_num})") from None
    if header is None:
        raise InputError(f"{role} file {name!r} is empty; it needs a header row and data rows")
    if all(_looks_numeric(h) for h in header):
        raise InputError(
            f"{role} file {name!r} has no header row (its first line is all numbers); "
            "add a first line with the column names"
        )
    if any(h == "" for h in header):
        pos = header.index("") + 1
        raise InputError(
            f"{role} file {name!r} has an empty column name (column {pos} of the header); "
            "name every column in the header row"
        )
    dup = [h for h in header if header.count(h) > 1]
    if dup:
        raise InputError(
            f"{role} file {name!r} names column {dup[0]!r} twice in its header; "
            "give every column its own name"
        )
    if len(header) == 1 and any(s in header[0] for s in (";", "\t")):
        raise InputError(
            f"{not_csv}: its header {header[0]!r} is one column; separate columns with commas"
        )
    if role == "data" and len(rows) < 2:
        raise InputError(
            f"{role} file {name!r} has {len(rows)} data row(s); at least 2 are needed"
        )
    if role != "data" and len(rows) < 1:
        raise InputError(f"{role} file {name!r} has no data rows; it needs at least one")
    return Table(name, tuple(header), rows, lines)


@dataclass(frozen=True)
class Dataset:
    """Numeric training (and optional test) data read from CSV files."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    features: tuple[str, ...]
    target: str
    train_path: str
    test_path: str | None


def select_columns(
    table: Table, target: str | None, features: Sequence[str] | None
) -> tuple[str, tuple[str, ...]]:
    """Resolve the target (default: last column) and features (default: all others)."""
    cols = table.columns
    if target is None:
        target = cols[-1]
    elif target not in cols:
        raise InputError(
            f"unknown target column {target!r} for --target; the data file has: {', '.join(cols)}"
        )
    if features is None:
        feats = tuple(c for c in cols if c != target)
    else:
        missing = [f for f in features if f not in cols]
        if missing:
            raise InputError(
                f"unknown feature column {missing[0]!r} for --features; the data file has: "
                f"{', '.join(cols)}"
            )
        if target in features:
            raise InputError(
                f"column {target!r} is the target and cannot also be a feature; "
                "remove it from --features or choose another --target"
            )
        feats = tuple(features)
    if not feats:
        raise InputError(
            f"data file {table.path!r} has no feature column besides the target {target!r}; "
            "it needs at least two columns"
        )
    return target, feats


def load_dataset(
    data: str | os.PathLike,
    target: str | None = None,
    features: Sequence[str] | None = None,
    test: str | os.PathLike | None = None,
) -> Dataset:
    """Read the training file (and a test file) and pick the target and feature columns.

    The test file must hold every feature column (matched by name, any order); the
    target is optional there (then no test metrics), and no column may be unknown to
    the training file.

    Raises
    ------
    InputError
    """
    train = read_table(data, "data", "--data")
    target, feats = select_columns(train, target, features)
    X = train.numeric(feats, "data")
    y = train.numeric([target], "data")[:, 0]
    X_test = y_test = None
    test_path = None
    if test is not None:
        tt = read_table(test, "test", "--test")
        test_path = tt.path
        extra = [c for c in tt.columns if c not in train.columns]
        missing = [c for c in feats if c not in tt.columns]
        if extra or missing:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(repr(c) for c in missing)}")
            if extra:
                parts.append(f"has {', '.join(repr(c) for c in extra)} not in the data file")
            raise InputError(
                f"test file {tt.path!r} has different columns from the data file: "
                f"it {' and '.join(parts)}; the test file needs the same header"
            )
        X_test = tt.numeric(feats, "test")
        if target in tt.columns:
            y_test = tt.numeric([target], "test")[:, 0]
    return Dataset(X, y, X_test, y_test, feats, target, train.path, test_path)
