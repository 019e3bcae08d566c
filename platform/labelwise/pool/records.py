"""Raw records, stable ids and the column mapping / prompt templates that make them.

Every loader yields :class:`Raw` records: prompt, response, task (None when the data has
none), the source name hashed into the id, ``where`` (file:line) for error reports, and
``absent``: the mapped columns the row lacks (read as empty; the pool build counts them).

A column the mapping names that is absent from a single row is read as empty, like null
(the row may then be dropped as "empty prompt" / "no task", always counted); a column absent
from every row of a file is a mapping mistake and an error listing the columns found. A
prompt or response cell that is not text (a list, a number) is an error naming the row and
the column (:func:`cell_text`); numbers in responses only with pool.numeric_responses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from typing import Any, Iterable, Iterator, Mapping


@dataclasses.dataclass
class Raw:
    prompt: str
    response: str
    task: str | None
    source: str
    where: str
    absent: tuple[str, ...] = ()


def stable_id(source: str, prompt: str, response: str) -> str:
    """A hash of the source name and the content: the same row gets the same id wherever it
    sits in the file, in every run."""
    h = hashlib.sha1()
    for part in (source, prompt, response):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def text(value: Any) -> str:
    """A cell as text: None/NaN become "", lists take their first item (SNI outputs)."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, (list, tuple)):
        return text(value[0]) if value else ""
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays / scalars
        return text(value.tolist())
    return str(value)


def cell_text(value: Any, column: str, where: str, numbers: bool = False) -> str:
    """A prompt or response cell as text. None/NaN are empty; text is kept; anything else (a
    list, a mapping, a number, a bool) is an error naming the row and the column, since turning
    it into a string silently changes the data (a list [1, 2] would become "1"). ``numbers``
    (pool.numeric_responses) accepts integers and floats as their decimal text."""
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays / scalars
        value = value.tolist()
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    hint = " (set pool.numeric_responses: true to read numbers as text)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    raise ValueError(
        f"{where}: column {column!r} holds {type(value).__name__} {shown}, not text; "
        f"prompts and responses must be strings{hint}"
    )


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render_template(template: str, row: Mapping[str, Any], cell=None) -> str:
    """Fill ``{column}`` placeholders; a paragraph (blocks split on a blank line) whose
    placeholders are all empty is left out, so "{instruction}\\n\\n{context}" gives just the
    instruction when the context is empty. ``cell(column, value)`` turns a cell into text
    (default :func:`text`)."""
    cell = cell or (lambda _, value: text(value))
    blocks = []
    for block in template.split("\n\n"):
        names = template_fields(block)
        values = {n: cell(n, row.get(n)).strip() for n in names}
        if names and not any(values.values()):
            continue
        blocks.append(block.format(**values))
    return "\n\n".join(blocks).strip()


class Mapper:
    """Turns one record (a dict) into a :class:`Raw` with a column mapping and templates.

    ``prompt`` / ``response`` / ``task`` name columns; ``prompt_template`` and
    ``response_template`` join several. ``response=""`` means the data carries no answers.
    A column missing from one row is read as empty (and listed in ``Raw.absent``); a column
    missing from a whole file is an error listing the columns found (:meth:`check_columns`,
    called by :func:`map_rows` at the end of each file).
    """

    def __init__(
        self,
        *,
        prompt: str | None = "prompt",
        response: str | None = "response",
        task: str | None = None,
        prompt_template: str | None = None,
        response_template: str | None = None,
        fixed_task: str | None = None,
        numeric_responses: bool = False,
    ):
        self.numeric_responses = numeric_responses
        self.prompt_template = prompt_template or ("{" + prompt + "}" if prompt else None)
        if self.prompt_template is None:
            raise ValueError("no prompt column: set pool.columns.prompt or pool.prompt_template")
        if response_template:
            self.response_template = response_template
        elif response:
            self.response_template = "{" + response + "}"
        else:
            self.response_template = None
        self.task = task
        self.fixed_task = fixed_task
        self.required = template_fields(self.prompt_template)
        if self.response_template:
            self.required += template_fields(self.response_template)
        if task:
            self.required.append(task)

    def check_columns(self, columns: Iterable[str], where: str) -> None:
        """Error when a mapped column is not among ``columns`` (those of a whole file)."""
        columns = list(columns)
        missing = [c for c in dict.fromkeys(self.required) if c not in columns]
        if not missing:
            return
        found = ", ".join(map(str, columns)) or "(none)"
        if missing[0] == self.task:
            raise ValueError(
                f"{where}: no task column; set pool.columns.task, pool.task (one task for all rows) "
                f"or pool.infer_tasks (k-means clusters). Column {self.task!r} not found; columns found: {found}"
            )
        raise ValueError(
            f"{where}: column {missing[0]!r} not found; columns found: {found} "
            "(set pool.columns or pool.prompt_template)"
        )

    def __call__(self, row: Mapping[str, Any], source: str, where: str) -> Raw:
        absent = tuple(c for c in dict.fromkeys(self.required) if c not in row)
        prompt = render_template(self.prompt_template, row, lambda c, v: cell_text(v, c, where))
        numbers = self.numeric_responses
        response = (
            render_template(self.response_template, row, lambda c, v: cell_text(v, c, where, numbers))
            if self.response_template
            else ""
        )
        task = text(row.get(self.task)).strip() if self.task else (self.fixed_task or "")
        return Raw(prompt=prompt, response=response, task=task or None, source=source, where=where, absent=absent)


def map_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], mapper: Mapper, source: str, file: str) -> Iterator[Raw]:
    """Map the rows of one file; after the last row, a mapped column that no row of the file
    has is an error naming ``file`` and listing the columns found."""
    seen: dict[str, None] = {}
    n = 0
    for where, row in rows:
        n += 1
        seen.update(dict.fromkeys(row.keys()))
        yield mapper(row, source, where)
    if n:
        mapper.check_columns(seen, file)
