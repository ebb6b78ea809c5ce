"""The operator's settings (queueworker.settings): typed from QUEUEWORKER_* variables, impossible values
refused with the variable's name."""

from __future__ import annotations

import pytest
from queueworker.settings import ConfigError, Settings


def test_the_api_timeout_is_whole_seconds_and_at_least_ten() -> None:
    assert Settings.from_env({}).api_timeout == 30
    assert Settings.from_env({"QUEUEWORKER_API_TIMEOUT": "12"}).api_timeout == 12
    for bad in ("9", "12.5"):  # a watch's timeoutSeconds takes whole seconds only
        with pytest.raises(ConfigError, match="QUEUEWORKER_API_TIMEOUT"):
            Settings.from_env({"QUEUEWORKER_API_TIMEOUT": bad})
