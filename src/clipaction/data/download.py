"""Download the official UCF101 videos and split lists: resumable, verified, unpacked atomically.

`download_ucf101(to)` is the whole job and returns `(data_root, splits_dir)`, the values for
`--data-root` and `--splits-dir`. `download_file` is one resumable HTTP download: bytes go to
`<dest>.part`, a later call resumes it with an HTTP `Range` request, and `dest` appears only when
the file is complete and verified. Archives unpack into a hidden temp folder inside the target
and are renamed into place only once checked, so a final folder is never half there.

The RAR archive needs the `rarfile` package and, for its compressed entries, an external
unpacker (`unrar`, `unar`, `7z`/`7zz` or `bsdtar`).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from clipaction import __version__
from clipaction.data.records import DatasetError
from clipaction.data.ucf101 import CLASS_INDEX, read_class_index

logger = logging.getLogger(__name__)

UCF101_VIDEOS_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"
UCF101_SPLITS_URL = "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"
UCF101_VIDEOS_DIR = "UCF-101"
UCF101_SPLITS_DIR = "ucfTrainTestlist"
SPLIT_FILES = (CLASS_INDEX,) + tuple(f"{kind}list0{n}.txt" for kind in ("train", "test") for n in (1, 2, 3))
# rarfile's tool names, in the order rarfile tries them.
RAR_TOOLS = ("unrar", "unar", "7z", "7zz", "bsdtar")
RAR_INSTALL_HINT = "install one: `apt-get install unrar` (or unar, p7zip-full, libarchive-tools)"
_UNPACKING = ".unpacking-"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
Check = Callable[[Path], str | None]  # a folder -> what is missing from it, or None


class DownloadError(DatasetError):
    """A download, check or unpack failed. The message is one line: what failed, where, what to do."""


class BadArchiveError(DownloadError):
    """The archive's bytes are bad: not an archive, a failed CRC, or not the expected layout."""


@dataclass(frozen=True)
class DownloadSource:
    """One file to fetch. `size` (bytes) and `sha256` (hex) are checked when given; otherwise the
    server's Content-Length and the archive opening and listing cleanly are the checks."""

    name: str
    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class UCF101Sources:
    """Where UCF101 comes from; the defaults are the official CRCV server (tests point elsewhere)."""

    videos: DownloadSource = field(
        default_factory=lambda: DownloadSource("UCF101 videos", UCF101_VIDEOS_URL, "UCF101.rar")
    )
    splits: DownloadSource = field(
        default_factory=lambda: DownloadSource(
            "UCF101 split lists", UCF101_SPLITS_URL, "UCF101TrainTestSplits-RecognitionTask.zip"
        )
    )


# ---------------------------------------------------------------------------------------------
# HTTP


def download_file(
    url: str,
    dest: str | Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    chunk: int = 1 << 20,
    timeout: float = 60,
    insecure: bool = False,
) -> Path:
    """Fetch `url` to `dest`, resuming `<dest>.part` from an earlier try; returns `dest`.

    A `dest` already there is trusted (it is only ever written complete) but checked against
    `expected_size`/`sha256` when given. The download is checked against `expected_size`, else
    the server's announced size, and `sha256` when given; a download failing these checks is
    deleted. `insecure=True` skips TLS certificate checks, for a mirror with a broken certificate
    only; it is off by default and logs a warning. Raises DownloadError.
    """
    dest = Path(dest)
    if dest.is_file():
        _verify(dest, url, expected_size, sha256, remove=False)
        logger.info("%s is already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        logger.warning("%s is larger than expected; starting again", part)
        offset = 0
    fetch = _Fetch(url, part, expected_size, progress, chunk, timeout, _ssl_context(insecure))
    total = fetch.run(offset)
    _verify(part, url, expected_size if expected_size is not None else total, sha256, remove=True)
    os.replace(part, dest)
    logger.info("downloaded %s", dest)
    return dest


def _ssl_context(insecure: bool) -> ssl.SSLContext | None:
    if not insecure:
        return None
    logger.warning("TLS certificate verification is OFF (insecure=True)")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class _Fetch:
    url: str
    part: Path
    expected_size: int | None
    progress: bool
    chunk: int
    timeout: float
    context: ssl.SSLContext | None

    def run(self, offset: int) -> int | None:
        """Stream the URL into `part` from `offset`; returns the full size the server announced
        (None when it did not say)."""
        request = urllib.request.Request(self.url, headers={"User-Agent": f"clipaction/{__version__}"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
            logger.info("resuming %s at byte %d", self.part.name, offset)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout, context=self.context)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and offset:  # nothing left to send: the .part should be complete
                total = _range_total(error.headers.get("Content-Range"))
                if total is None or total == offset:
                    return offset
                logger.warning("%s does not match the server's size; starting again", self.part.name)
                return self.run(0)
            raise _network_error(self.url, f"HTTP {error.code} {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
            raise _network_error(self.url, _reason(error)) from None
        with response:
            if response.status == 206:
                found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not found or int(found.group(1)) != offset:
                    logger.warning("the server sent the wrong range of %s; starting again", self.url)
                    response.close()
                    return self.run(0)
                start, total = offset, _range_total(found.group(0))
            else:
                if offset:
                    logger.info("the server ignored the Range request for %s; starting from zero", self.url)
                length = response.headers.get("Content-Length", "")
                start, total = 0, int(length) if length.isdigit() else None
            if self.expected_size is not None and total is not None and total != self.expected_size:
                raise DownloadError(
                    f"{self.url} has {total} bytes but {self.expected_size} were expected; the source has changed"
                )
            _check_disk_space(self.part.parent, (total or 0) - start)
            _stream(response, self.part, start, total, self.url, self.progress, self.chunk)
        return total


def _range_total(content_range: str | None) -> int | None:
    """The full size at the end of a Content-Range header (`bytes 5-9/10`, `bytes */10`)."""
    found = re.search(r"/(\d+)\s*$", content_range or "")
    return int(found.group(1)) if found else None


def _stream(response, part: Path, start: int, total: int | None, url: str, progress: bool, chunk: int) -> None:
    written = start
    bar = tqdm(
        total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
        desc=part.name.removesuffix(".part"), disable=not progress, dynamic_ncols=True,
    )  # fmt: skip
    with bar, open(part, "ab" if start else "wb") as out:
        while True:
            try:
                data = response.read(chunk)
            except http.client.IncompleteRead as error:
                out.write(error.partial)
                written += len(error.partial)
                raise _network_error(url, f"connection closed after {written} bytes") from None
            except (OSError, http.client.HTTPException) as error:
                raise _network_error(url, f"{_reason(error)} after {written} bytes") from None
            if not data:
                break
            out.write(data)
            written += len(data)
            bar.update(len(data))
    if total is not None and written < total:
        raise _network_error(url, f"connection closed after {written} of {total} bytes")


def _verify(path: Path, url: str, size: int | None, sha256: str | None, *, remove: bool) -> None:
    """Check size and hash; a failing download is removed (it cannot be resumed into shape)."""
    actual = path.stat().st_size
    problem = None
    if size is not None and actual != size:
        problem = f"has {actual} bytes, expected {size}"
    elif sha256 is not None and (digest := _sha256(path)) != sha256.lower():
        problem = f"has sha256 {digest}, expected {sha256.lower()}"
    if problem is None:
        return
    if remove:
        path.unlink()
        raise DownloadError(f"download of {url} {problem}; the file was deleted, run the command again")
    raise DownloadError(f"{path} {problem}; delete it and run the command again to download it again")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_disk_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"not enough disk space in {folder}: {needed / 1e9:.1f} GB to download, {free / 1e9:.1f} GB free"
        )


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return " ".join(str(reason).split()) or type(error).__name__


def _network_error(url: str, reason: str) -> DownloadError:
    return DownloadError(f"download of {url} failed: {reason}; run the command again to resume")


# ---------------------------------------------------------------------------------------------
# Unpacking


def unpack_zip(archive: str | Path, target: str | Path, *, progress: bool = True) -> None:
    """Extract a zip into `target`, refusing members that would land outside it."""
    archive, target = Path(archive), Path(target)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info.filename, archive)
            bad = zf.testzip()
            if bad is not None:
                raise BadArchiveError(f"{archive.name} is damaged (bad CRC in {bad})")
            with _unpack_bar(archive, sum(m.file_size for m in members), progress) as bar:
                for info in members:
                    zf.extract(info, target)
                    bar.update(info.file_size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise _bad_archive(archive, error) from None


def unpack_rar(archive: str | Path, target: str | Path, *, progress: bool = True) -> None:
    """Extract a RAR into `target` with `rarfile`. Stored entries need nothing else; compressed
    ones need an external unpacker, and DownloadError says what to install when none is found."""
    archive, target = Path(archive), Path(target)
    try:
        import rarfile
    except ImportError:
        raise DownloadError(
            f"cannot unpack {archive.name}: the rarfile package is missing; `pip install rarfile`"
        ) from None
    try:
        with rarfile.RarFile(archive) as rf:
            if rf.strerror():  # rarfile stops listing at a broken header instead of raising
                raise BadArchiveError(f"{archive.name} is damaged ({rf.strerror()})")
            members = rf.infolist()
            for info in members:
                _check_member(info.filename, archive)
                if info.is_symlink() or info.needs_password():
                    raise DownloadError(f"{archive.name}: refusing {info.filename!r}, a link or encrypted entry")
            compressed = any(m.compress_type != rarfile.RAR_M0 for m in members if m.is_file())
            if compressed and _find_unpacker() is None:
                raise _no_unpacker(archive)
            with _unpack_bar(archive, sum(m.file_size for m in members), progress) as bar:
                for info in members:
                    if info.is_dir():
                        (target / info.filename).mkdir(parents=True, exist_ok=True)
                    else:
                        rf.extract(info, target)
                    bar.update(info.file_size)
    except rarfile.RarCannotExec:
        raise _no_unpacker(archive) from None
    except rarfile.Error as error:
        raise _bad_archive(archive, error) from None


def _find_unpacker() -> str | None:
    """The first RAR tool on PATH that rarfile can use, or None."""
    for tool in RAR_TOOLS:
        found = shutil.which(tool)
        if found:
            return found
    return None


def _no_unpacker(archive: Path) -> DownloadError:
    return DownloadError(
        f"cannot unpack {archive.name}: no RAR unpacker found; {RAR_INSTALL_HINT}, then run the command again"
    )


def _bad_archive(archive: Path, error: BaseException) -> BadArchiveError:
    return BadArchiveError(f"{archive.name} is damaged or not an archive ({_reason(error)})")


def _check_member(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"[A-Za-z]:", name):
        raise DownloadError(f"{archive.name}: refusing member {name!r}, which would land outside the target")


def _unpack_bar(archive: Path, total: int, progress: bool) -> tqdm:
    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"unpack {archive.name}",
        disable=not progress, dynamic_ncols=True,
    )  # fmt: skip


def unpack_into(
    archive: Path, to: Path, folder: str, unpack: Callable[..., None], check: Check, *, progress: bool
) -> Path:
    """Unpack `archive` (which holds `folder/`) into a temp folder inside `to`, run `check` on
    the unpacked folder, then rename it to `to/folder`. Returns `to/folder`; a failure leaves
    neither `to/folder` nor the temp folder behind."""
    final = to / folder
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder}{_UNPACKING}", dir=to))
    try:
        unpack(archive, scratch, progress=progress)
        produced = scratch / folder
        if not produced.is_dir():
            raise BadArchiveError(f"{archive.name} holds no {folder}/ folder")
        problem = check(produced)
        if problem:
            raise DownloadError(f"{archive.name} is incomplete: {problem}")
        os.replace(produced, final)
    except OSError as error:  # e.g. a full disk
        raise DownloadError(f"unpacking {archive.name} into {to} failed: {_reason(error)}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------
# UCF101


def missing_split_files(splits_dir: Path) -> list[str]:
    """The official split files absent from `splits_dir`."""
    return [name for name in SPLIT_FILES if not (splits_dir / name).is_file()]


def missing_classes(data_root: Path, classes: list[str]) -> list[str]:
    """Classes without a non-empty folder in `data_root`, compared case-insensitively (the lists
    say HandstandPushups, the archive HandStandPushups)."""
    present = set()
    if data_root.is_dir():
        present = {d.name.casefold() for d in data_root.iterdir() if d.is_dir() and any(d.iterdir())}
    return [name for name in classes if name.casefold() not in present]


def _splits_problem(splits_dir: Path) -> str | None:
    missing = missing_split_files(splits_dir)
    return f"{UCF101_SPLITS_DIR}/ lacks {', '.join(missing)}" if missing else None


def _videos_check(classes: list[str]) -> Check:
    def problem(data_root: Path) -> str | None:
        missing = missing_classes(data_root, classes)
        if not missing:
            return None
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"{UCF101_VIDEOS_DIR}/ lacks the class folders {', '.join(missing[:3])}{more}"

    return problem


def _use_existing(path: Path, check: Check) -> None:
    problem = check(path)
    if problem:
        raise DownloadError(f"{path} exists but is incomplete ({problem}); move it away and run the command again")
    logger.info("%s is already complete", path)


def _fetch_and_unpack(source, to, folder, unpack, check, *, progress, insecure, keep_archive) -> Path:
    logger.info("downloading %s from %s", source.name, source.url)
    archive = download_file(
        source.url, to / source.filename, expected_size=source.size, sha256=source.sha256,
        progress=progress, insecure=insecure,
    )  # fmt: skip
    try:
        final = unpack_into(archive, to, folder, unpack, check, progress=progress)
    except BadArchiveError as error:
        if source.sha256 is not None:  # the bytes are the published ones: the source itself is bad
            raise BadArchiveError(f"{error}; the published file itself is unusable") from None
        # Only Content-Length vouched for these bytes (an error page or a truncated copy passes
        # that), so a bad archive is a bad download: drop it so the next run fetches it again.
        archive.unlink(missing_ok=True)
        raise BadArchiveError(f"{error}; it was deleted, run the command again to download it again") from None
    if not keep_archive:
        archive.unlink()
        logger.info("removed %s (pass keep_archives=True to keep it)", archive)
    return final


def _clean_scratch(to: Path) -> None:
    for folder in (UCF101_VIDEOS_DIR, UCF101_SPLITS_DIR):
        for stale in to.glob(f".{folder}{_UNPACKING}*"):
            logger.info("removing %s, left by an interrupted unpack", stale)
            shutil.rmtree(stale, ignore_errors=True)


def download_ucf101(
    to: str | Path,
    *,
    sources: UCF101Sources | None = None,
    progress: bool = True,
    insecure: bool = False,
    keep_archives: bool = False,
) -> tuple[Path, Path]:
    """Download and unpack UCF101 into `to`; returns `(to/"UCF-101", to/"ucfTrainTestlist")`,
    the `--data-root` and `--splits-dir` to use.

    Parts already complete (the split files all there; a non-empty folder for every class of
    classInd.txt) are not fetched again; interrupted downloads resume. Archives are deleted
    after a checked unpack unless `keep_archives`. `insecure` turns off TLS certificate checks
    (only for a mirror with a broken certificate). Raises DownloadError with one actionable line.
    """
    to = Path(to).expanduser().resolve()
    sources = sources or UCF101Sources()
    to.mkdir(parents=True, exist_ok=True)
    _clean_scratch(to)
    splits_dir, data_root = to / UCF101_SPLITS_DIR, to / UCF101_VIDEOS_DIR
    options = dict(progress=progress, insecure=insecure, keep_archive=keep_archives)

    if splits_dir.exists():
        _use_existing(splits_dir, _splits_problem)
    else:
        _fetch_and_unpack(sources.splits, to, UCF101_SPLITS_DIR, unpack_zip, _splits_problem, **options)

    check_videos = _videos_check(read_class_index(splits_dir / CLASS_INDEX))
    if data_root.exists():
        _use_existing(data_root, check_videos)
    else:
        _fetch_and_unpack(sources.videos, to, UCF101_VIDEOS_DIR, unpack_rar, check_videos, **options)
    return data_root, splits_dir
