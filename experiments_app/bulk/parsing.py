"""Reading a list of user or device ids from a paste or an uploaded CSV/TXT file.

Plain text holds one id per line. A CSV (a first line with a comma, semicolon or tab, or a
first line that is just a known column name) takes the column named ``user_id``, ``device_id``
or ``id`` (case-insensitive, first match in that order). Ids are trimmed and de-duplicated
(first occurrence kept); empty, over-long, control-character and non-UTF-8 lines are
reported with their line numbers, and so is a list over the cap. Only a clean result is used.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field

MAX_ID_LENGTH = 256  # the upstream's limit for one inclusion id
ID_COLUMNS = ("user_id", "device_id", "id")
DELIMITERS = ",;\t"
PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ParsedIds:
    ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid: int = 0  # lines with a bad id
    duplicates: int = 0
    column: str | None = None  # the CSV column used, if any

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.ids)

    @property
    def shown_problems(self) -> list[Problem]:
        return self.problems[:PROBLEMS_SHOWN]


def _bad_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value)


def _decode(data: bytes, result: ParsedIds) -> str | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            result.problems.append(Problem(number, "is not valid UTF-8"))
            result.invalid += 1
    return None


def _lines(text: str) -> list[str]:
    # Only \n and \r\n end a line: any other separator inside a line is a control character.
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are the end of the file, not empty ids
    return lines


def _csv_header(first_line: str) -> list[str] | None:
    stripped = first_line.strip().lstrip("\ufeff")
    if stripped.lower() in ID_COLUMNS:
        return [stripped]
    if any(d in stripped for d in DELIMITERS):
        return next(csv.reader([stripped], delimiter=_delimiter(stripped)))
    return None


def _delimiter(line: str) -> str:
    return max(DELIMITERS, key=line.count)


def parse_ids(data: bytes | str, *, max_ids: int = 50_000) -> ParsedIds:
    """Parse ``data``; the result's ``ok`` says whether it may be used."""
    result = ParsedIds()
    if isinstance(data, bytes):
        text = _decode(data, result)
        if text is None:
            return result
    else:
        text = data
    lines = _lines(text)
    if not lines:
        result.problems.append(Problem(None, "There are no ids."))
        return result
    header = _csv_header(lines[0])
    if header is not None:
        values = _column_values(lines, header, result)
    else:
        values = ((number, line) for number, line in enumerate(lines, start=1))
    seen: dict[str, None] = {}
    for number, raw in values:
        value = raw.strip()
        if not value:
            result.problems.append(Problem(number, "is empty"))
        elif _bad_characters(value):
            result.problems.append(Problem(number, "contains a control character"))
        elif len(value) > MAX_ID_LENGTH:
            result.problems.append(Problem(number, f"is {len(value)} characters long (at most {MAX_ID_LENGTH})"))
        elif value in seen:
            result.duplicates += 1
            continue
        else:
            seen[value] = None
            continue
        result.invalid += 1
    result.ids = list(seen)
    if len(result.ids) > max_ids:
        result.problems.append(Problem(None, f"{len(result.ids):,} distinct ids: at most {max_ids:,} in one job."))
    if not result.ids and not result.problems:
        result.problems.append(Problem(None, "There are no ids."))
    return result


def _column_values(lines: list[str], header: list[str], result: ParsedIds):
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    column = next((name for name in ID_COLUMNS if name in names), None)
    if column is None:
        result.problems.append(Problem(1, "has no column named user_id, device_id or id"))
        return
    result.column = column
    index = names.index(column)
    delimiter = _delimiter(lines[0]) if len(names) > 1 else ","
    reader = csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=delimiter)
    line_number = 1
    for row in reader:
        line_number = reader.line_num + 1
        if not row:
            yield line_number, ""
        elif index >= len(row):
            result.problems.append(Problem(line_number, f"has no {column} value"))
            result.invalid += 1
        else:
            yield line_number, row[index]
