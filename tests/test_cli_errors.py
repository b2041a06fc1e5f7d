"""One way to report a user's mistake on every command line: the message, a non-zero exit, no traceback."""

from __future__ import annotations

import pytest

from cryptobot.cli_errors import USER_ERRORS, UserError, run_command
from cryptobot.config import ConfigError
from cryptobot.data import DataValidationError
from cryptobot.data.download import DownloadError
from cryptobot.live.state import StateError
from cryptobot.ml.bundle import BundleError
from research.report import ReportError
from research.sweep import GridError


@pytest.mark.parametrize("error", [ConfigError(["risk.max_drawdown: must be <= 1"]), DataValidationError("bad row 3"),
                                   GridError("bad grid"), BundleError("hash mismatch"), StateError("no state"),
                                   ReportError("no such template"), DownloadError("no market"),
                                   FileNotFoundError("x.csv: no such file")])
def test_every_user_error_is_printed_with_the_exit_code(error: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    def command(_: object) -> int:
        raise error

    assert isinstance(error, USER_ERRORS)
    assert run_command(command, None, code=3, prefix="import failed: ") == 3
    err = capsys.readouterr().err
    assert err.startswith("import failed: ") and str(error) in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback() -> None:
    def command(_: object) -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_command(command, None)
    assert not issubclass(KeyError, UserError)


def test_the_exit_code_of_a_command_that_succeeds_passes_through() -> None:
    assert run_command(lambda args: args, 0) == 0
    assert run_command(lambda args: None, 0) == 0
    assert run_command(lambda args: 1, 0) == 1
