"""The operator's settings (queueworker.settings): typed from QUEUEWORKER_* variables, impossible values
refused with the variable's name."""

from __future__ import annotations

import pytest
from queueworker.settings import ConfigError, Settings


def test_the_watch_timeout_is_whole_seconds_and_at_least_ten() -> None:
    assert Settings.from_env({}).watch_timeout == 30
    assert Settings.from_env({"QUEUEWORKER_WATCH_TIMEOUT": "12"}).watch_timeout == 12
    for bad in ("9", "12.5"):  # the API server takes only whole seconds in a watch's timeoutSeconds
        with pytest.raises(ConfigError, match="QUEUEWORKER_WATCH_TIMEOUT"):
            Settings.from_env({"QUEUEWORKER_WATCH_TIMEOUT": bad})
