"""The one error family of clipaction: what a user can fix, said in terms of the setting.

Library code raises these with `setting` naming the config field (`dataset.root`,
`model.name_or_path`, `sampler.frames`), never a CLI flag: a TOML user and a Python user read
the setting, and the CLI maps it to its flag when it prints (`clipaction.cli.flags`). Anything
that is not a `ClipactionError` reaching the CLI is a bug (traceback, exit 3).
"""

from __future__ import annotations


class ClipactionError(Exception):
    """Something the user can change: a setting, an input file, a model folder.

    `setting` is the dotted config field the message is about, or None when it is about no
    single setting (a damaged video, an interrupted download). `str()` gives
    "setting: message", so library users see which setting to change.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}" if self.setting else self.message


class ConfigError(ClipactionError, ValueError):
    """A setting has a value that cannot work (out of range, not one of the allowed values)."""


class DataError(ClipactionError):
    """A dataset, split list, label file or video cannot be used as given."""


class ModelLoadError(ClipactionError):
    """The model or its processor could not be loaded (not found, unsupported family, offline)."""


class CapabilityError(ClipactionError):
    """A stage asked a backend for something its model family cannot do."""


class OutputError(ClipactionError):
    """Results cannot be written where asked (not a folder, not writable)."""
