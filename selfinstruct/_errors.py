"""Errors that end a command with one clear line and exit code 2.

Bad input must never produce a traceback: the user needs to know which file, line and field
is wrong, and nothing may be half-written. Every module raises `InputError` for such cases and
the CLI turns it into `selfinstruct: error: <message>` with exit code 2.
"""


class InputError(Exception):
    """A user-facing problem with input (a file, a flag, a config value)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep it to one line: the CLI prints it as-is.
        super().__init__(" ".join(message.split()))


def located(path: object, message: str, line: int | None = None, field: str | None = None) -> str:
    """Format `file:line: field 'x': message`, the one-line shape all input errors share."""
    where = str(path)
    if line is not None:
        where += f":{line}"
    if field is not None:
        return f"{where}: field '{field}': {message}"
    return f"{where}: {message}"
