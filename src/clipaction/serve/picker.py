"""The server-side folder picker: the videos under `--videos DIR`, and the one rule that a
choice from the browser is only ever a name from that list, resolved inside DIR.

A choice is a relative POSIX path. It is refused when it is absolute, has a `..` part, names a
hidden file, leaves DIR once symlinks are resolved, or is not a video file there; the browser
never gives a path that the server opens as it is.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from clipaction.data.folder import is_video, walk_files
from clipaction.errors import DataError


def _inside(path: str, real_root: str) -> bool:
    return os.path.commonpath([path, real_root]) == real_root


def list_videos(root: str | Path) -> list[str]:
    """Relative paths of the videos under `root` that `resolve_choice` accepts, sorted."""
    real_root = os.path.realpath(root)
    found = []
    for rel, path in walk_files(root):
        if is_video(rel) and _inside(os.path.realpath(path), real_root):
            found.append(rel)
    return sorted(found)


def resolve_choice(root: str | Path, choice: str) -> Path:
    """The real path of the video `choice` names under `root`; DataError when it is not one."""
    if not choice or not isinstance(choice, str):
        raise DataError("pick a video from the list", setting="video")
    shown = choice if len(choice) <= 80 else choice[:77] + "..."
    parts = choice.replace("\\", "/").split("/")
    if PurePosixPath(choice).is_absolute() or choice.startswith(("/", "\\")) or (len(choice) > 1 and choice[1] == ":"):
        raise DataError(f"{shown!r} is not one of the listed videos (absolute paths are refused)", setting="video")
    # checked on the raw text: PurePosixPath would quietly drop '.' and empty parts
    if any(not part or part.startswith(".") for part in parts) or "\x00" in choice:
        raise DataError(
            f"{shown!r} is not one of the listed videos ('..' and hidden names are refused)", setting="video"
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *parts))
    if not _inside(real, real_root):
        raise DataError(f"{shown!r} is not one of the listed videos (it links outside the folder)", setting="video")
    if not os.path.isfile(real) or not is_video(real):
        raise DataError(f"{shown!r} is not one of the listed videos", setting="video")
    return Path(real)
