"""The one exception type users see: a readable sentence, never a traceback."""

from __future__ import annotations


class WorkbenchError(ValueError):
    """A problem the user can fix (bad input, missing dataset, unknown name).

    The message is one sentence that names the file, line or field involved. The CLI prints it
    and exits 1; the app shows it with ``st.error``.
    """


class InputError(WorkbenchError):
    """Malformed input data; raised before anything is written."""

    def __init__(self, source: str, where: str | None, message: str) -> None:
        self.source = source
        self.where = where
        self.detail = message
        place = f"{source} {where}" if where else source
        super().__init__(f"{place}: {message}")
