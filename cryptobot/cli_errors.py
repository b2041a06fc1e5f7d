"""How every command reports a user's mistake: its message on stderr, a non-zero exit, no traceback.

The messages already name the file, key or row and what to do (config, data validation, grids, bundles,
state directories), so the command line only has to print them. Anything else is a bug in cryptobot and
keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Mixed into errors that mean "the input or the setup is wrong", whatever their base class."""


# ValueError covers ConfigError, DataValidationError, GridError and the validation of arguments.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError)


def run_command(command: Callable[[T], int | None], args: T, *, code: int = 2, prefix: str = "") -> int:
    """`command(args)`'s exit code; a user error is printed (after `prefix`) and becomes exit `code`."""
    try:
        return int(command(args) or 0)
    except USER_ERRORS as exc:
        print(f"{prefix}{exc}", file=sys.stderr)
        return code
