"""UCF101 download: resumable HTTP against a local server, checks, safe and atomic unpacking.

Everything is offline: a ThreadingHTTPServer on 127.0.0.1 serves archives built here, including a
RAR 4.x archive written byte by byte (no tool here can create RAR files).
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import struct
import sys
import threading
import zipfile
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clipaction.data import download
from clipaction.data.download import (
    BadArchiveError,
    DownloadError,
    DownloadSource,
    UCF101Sources,
    download_file,
    download_ucf101,
    unpack_rar,
    unpack_zip,
)

SHARED_SPLITS = Path(__file__).resolve().parents[1].parent / "shared" / "ucf101_splits"
SPLIT_NAMES = ("classInd.txt", "trainlist01.txt", "trainlist02.txt", "trainlist03.txt",
               "testlist01.txt", "testlist02.txt", "testlist03.txt")  # fmt: skip


# --- a local HTTP server with Range support and two failure modes -------------------------------


class _Handler(SimpleHTTPRequestHandler):
    """Serves files with `Range: bytes=N-` support (206/416). `server.mode` picks a behaviour:
    "range" (default), "ignore-range" (always 200, whole file); `server.drop_after` cuts the
    next response after that many body bytes."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start, status = 0, 200
        if wanted and server.mode == "range":
            start, status = int(wanted.group(1)), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if server.drop_after is not None:
            body, server.drop_after = body[: server.drop_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    httpd.daemon_threads = True
    httpd.root, httpd.requests, httpd.mode, httpd.drop_after = root, [], "range", None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# --- fixture archives ----------------------------------------------------------------------------


def _rar_block(kind: int, flags: int, body: bytes) -> bytes:
    """One RAR 4.x block: HEAD_CRC (low 16 bits of the CRC32 of the rest), type, flags, size."""
    head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def make_rar(entries: dict[str, bytes], method: int = 0x30) -> bytes:
    """A RAR 4.x archive of `entries` (name -> bytes); method 0x30 stores, 0x33 claims
    "normal" compression (the bytes are then not a valid stream, but listing works)."""
    out = [b"Rar!\x1a\x07\x00", _rar_block(0x73, 0, b"\0" * 6)]  # marker, archive header
    dos_time = (32 << 25) | (1 << 21) | (1 << 16)  # 2012-01-01 00:00
    for name, data in entries.items():
        raw = name.encode()
        fields = struct.pack(
            "<LLBLLBBHL", len(data), len(data), 3, zlib.crc32(data), dos_time, 29, method, len(raw), 0o100644
        )  # packed size, size, host OS (Unix), file CRC32, time, version, method, name length, mode
        out += [_rar_block(0x74, 0x8000, fields + raw), data]  # 0x8000: data follows the header
    out.append(_rar_block(0x7B, 0x4000, b""))  # end of archive
    return b"".join(out)


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def split_files() -> dict[str, bytes]:
    """The official split files: the real lists from ../shared when present, else small ones."""
    if all((SHARED_SPLITS / name).is_file() for name in SPLIT_NAMES):
        return {name: (SHARED_SPLITS / name).read_bytes() for name in SPLIT_NAMES}
    classes = [f"Action{i:03d}" for i in range(1, 102)]
    files = {"classInd.txt": "".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)).encode()}
    for n in (1, 2, 3):
        files[f"trainlist0{n}.txt"] = f"{classes[0]}/v_{classes[0]}_g08_c01.avi 1\r\n".encode()
        files[f"testlist0{n}.txt"] = f"{classes[0]}/v_{classes[0]}_g01_c01.avi\r\n".encode()
    return files


def class_names(splits: dict[str, bytes]) -> list[str]:
    return [line.split()[1] for line in splits["classInd.txt"].decode().splitlines() if line.strip()]


def video_entries(classes: list[str]) -> dict[str, bytes]:
    # The archive spells HandStandPushups where the lists say HandstandPushups.
    folders = [("HandStandPushups" if c == "HandstandPushups" else c) for c in classes]
    return {f"UCF-101/{c}/v_{c}_g01_c01.avi": f"RIFF fake avi {c}".encode() for c in folders}


@pytest.fixture
def ucf_server(server):
    splits = split_files()
    videos = video_entries(class_names(splits))
    (server.root / "splits.zip").write_bytes(make_zip({f"ucfTrainTestlist/{k}": v for k, v in splits.items()}))
    (server.root / "UCF101.rar").write_bytes(make_rar(videos))
    server.sources = UCF101Sources(
        videos=DownloadSource("videos", f"{server.url}/UCF101.rar", "UCF101.rar"),
        splits=DownloadSource("splits", f"{server.url}/splits.zip", "splits.zip"),
    )
    server.videos = videos
    return server


# --- UCF101 end to end ---------------------------------------------------------------------------


def test_download_ucf101_unpacks_and_returns_the_two_paths(ucf_server, tmp_path):
    to = tmp_path / "data"
    data_root, splits_dir = download_ucf101(to, sources=ucf_server.sources, progress=False)

    assert (data_root, splits_dir) == (to / "UCF-101", to / "ucfTrainTestlist")
    for name in SPLIT_NAMES:
        assert (splits_dir / name).is_file()
    for name, data in ucf_server.videos.items():
        assert (to / name).read_bytes() == data
    assert sorted(p.name for p in to.iterdir()) == ["UCF-101", "ucfTrainTestlist"]  # archives, temp dirs gone


def test_a_complete_dataset_is_not_downloaded_again(ucf_server, tmp_path):
    to = tmp_path / "data"
    first = download_ucf101(to, sources=ucf_server.sources, progress=False)
    ucf_server.requests.clear()
    assert download_ucf101(to, sources=ucf_server.sources, progress=False) == first
    assert ucf_server.requests == []


def test_keep_archives_keeps_them(ucf_server, tmp_path):
    download_ucf101(tmp_path / "d", sources=ucf_server.sources, progress=False, keep_archives=True)
    assert (tmp_path / "d" / "UCF101.rar").is_file() and (tmp_path / "d" / "splits.zip").is_file()


def test_missing_split_file_is_named_and_nothing_is_left_half_done(server, tmp_path):
    splits = split_files()
    del splits["testlist03.txt"]
    (server.root / "splits.zip").write_bytes(make_zip({f"ucfTrainTestlist/{k}": v for k, v in splits.items()}))
    sources = UCF101Sources(
        videos=DownloadSource("videos", f"{server.url}/none.rar", "UCF101.rar"),
        splits=DownloadSource("splits", f"{server.url}/splits.zip", "splits.zip"),
    )
    with pytest.raises(DownloadError, match=r"splits.zip is incomplete: ucfTrainTestlist/ lacks testlist03.txt"):
        download_ucf101(tmp_path / "d", sources=sources, progress=False)
    assert not (tmp_path / "d" / "ucfTrainTestlist").exists()
    assert not list((tmp_path / "d").glob(".ucfTrainTestlist*"))


def test_no_rar_unpacker_gives_the_install_hint_and_keeps_the_archive(ucf_server, tmp_path, monkeypatch):
    (ucf_server.root / "UCF101.rar").write_bytes(make_rar(ucf_server.videos, method=0x33))
    monkeypatch.setattr(download, "_find_unpacker", lambda: None)
    to = tmp_path / "d"
    with pytest.raises(DownloadError) as caught:
        download_ucf101(to, sources=ucf_server.sources, progress=False)
    message = str(caught.value)
    assert "no RAR unpacker found" in message and "apt-get install unrar" in message and "\n" not in message
    assert (to / "UCF101.rar").is_file()  # a good download is not thrown away for a missing tool
    assert not (to / "UCF-101").exists() and not list(to.glob(".UCF-101*"))


def test_an_incomplete_existing_folder_is_reported_not_overwritten(ucf_server, tmp_path):
    to = tmp_path / "d"
    (to / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    (to / "UCF-101" / "ApplyEyeMakeup" / "v.avi").write_bytes(b"mine")
    with pytest.raises(DownloadError, match="UCF-101 exists but is incomplete .*move it away"):
        download_ucf101(to, sources=ucf_server.sources, progress=False)
    assert [path for path, _ in ucf_server.requests] == ["/splits.zip"]
    assert (to / "UCF-101" / "ApplyEyeMakeup" / "v.avi").read_bytes() == b"mine"


def test_an_archive_missing_classes_is_refused(ucf_server, tmp_path):
    videos = dict(ucf_server.videos)
    del videos[list(videos)[-1]]
    (ucf_server.root / "UCF101.rar").write_bytes(make_rar(videos))
    to = tmp_path / "d"
    with pytest.raises(DownloadError, match="UCF101.rar is incomplete: UCF-101/ lacks the class folders"):
        download_ucf101(to, sources=ucf_server.sources, progress=False)
    assert not (to / "UCF-101").exists() and not list(to.glob(".UCF-101*"))


def test_tls_checks_stay_on_unless_insecure_is_asked_for():
    import ssl

    assert download._ssl_context(False) is None  # urllib's default: verified
    assert download._ssl_context(True).verify_mode == ssl.CERT_NONE


def test_find_unpacker_looks_for_the_tools_rarfile_tries_in_its_order(monkeypatch):
    import rarfile

    # What rarfile itself tries: each tool's check command, recorded instead of run.
    tried = []

    def no_tool(cmdline, *args, **kwargs):
        tried.append(cmdline[0])
        raise rarfile.RarCannotExec(cmdline[0])

    monkeypatch.setattr(rarfile, "custom_popen", no_tool)
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)  # restored afterwards
    with pytest.raises(rarfile.RarCannotExec):
        rarfile.tool_setup(force=True)
    assert len(tried) >= 3

    seen = []
    monkeypatch.setattr(download.shutil, "which", lambda tool: seen.append(tool))
    assert download._find_unpacker() is None
    assert seen == tried

    # The first tool found on PATH wins, whichever of rarfile's it is.
    monkeypatch.setattr(download.shutil, "which", lambda tool: f"/opt/bin/{tool}" if tool in tried[-2:] else None)
    assert download._find_unpacker() == f"/opt/bin/{tried[-2]}"


def test_damaged_rar_is_refused_and_deleted(ucf_server, tmp_path):
    good = make_rar(ucf_server.videos)
    (ucf_server.root / "UCF101.rar").write_bytes(good[:-12] + b"#####" + good[-7:])  # last file's data
    to = tmp_path / "d"
    with pytest.raises(BadArchiveError, match="UCF101.rar is damaged.*deleted, run the command again"):
        download_ucf101(to, sources=ucf_server.sources, progress=False)
    assert not (to / "UCF101.rar").exists() and not (to / "UCF-101").exists()
    assert not list(to.glob(".UCF-101*"))


@pytest.mark.parametrize("damage", ["data", "header", "truncated", "not-rar"])
def test_unpack_rar_refuses_damaged_archives(tmp_path, damage):
    good = make_rar({"UCF-101/A/a.avi": b"a" * 100, "UCF-101/B/b.avi": b"b" * 100})
    second = good.index(b"UCF-101/B") - 32  # start of the second file header
    broken = {
        "data": good[:-20] + b"#" * 13 + good[-7:],
        "header": good[: second + 5] + b"\xff" + good[second + 6 :],
        "truncated": good[:-60],
        "not-rar": b"<html>503 Service Unavailable</html>",
    }[damage]
    archive = tmp_path / "x.rar"
    archive.write_bytes(broken)
    with pytest.raises(BadArchiveError, match="x.rar is damaged"):
        unpack_rar(archive, tmp_path / "out", progress=False)


# --- download_file -------------------------------------------------------------------------------


def _payload(size: int = 300_000) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = _payload()
    (server.root / "f.bin").write_bytes(data)
    dest = tmp_path / "out" / "f.bin"
    server.drop_after = 100_000
    with pytest.raises(DownloadError, match=r"f\.bin failed: .*run the command again to resume"):
        download_file(f"{server.url}/f.bin", dest, progress=False, chunk=8192)
    part = dest.with_name("f.bin.part")
    assert part.stat().st_size == 100_000 and not dest.exists()

    assert download_file(f"{server.url}/f.bin", dest, progress=False, chunk=8192) == dest
    assert server.requests[-1] == ("/f.bin", "bytes=100000-")
    assert dest.read_bytes() == data and not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _payload()
    (server.root / "f.bin").write_bytes(data)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"x" * 5000)  # junk that must not survive
    server.mode = "ignore-range"
    download_file(f"{server.url}/f.bin", dest, progress=False)
    assert server.requests == [("/f.bin", "bytes=5000-")]
    assert dest.read_bytes() == data


def test_a_complete_part_answered_with_416_is_finished(server, tmp_path):
    data = _payload(5000)
    (server.root / "f.bin").write_bytes(data)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(data)
    download_file(f"{server.url}/f.bin", dest, progress=False, sha256=hashlib.sha256(data).hexdigest())
    assert server.requests == [("/f.bin", "bytes=5000-")]  # answered 416
    assert dest.read_bytes() == data


@pytest.mark.parametrize("check", ["size", "sha256"])
def test_size_or_hash_mismatch_raises_and_leaves_no_file(server, tmp_path, check):
    data = _payload(5000)
    (server.root / "f.bin").write_bytes(data)
    dest = tmp_path / "f.bin"
    options = {"expected_size": len(data) + 1} if check == "size" else {"sha256": "0" * 64}
    with pytest.raises(DownloadError, match="expected"):
        download_file(f"{server.url}/f.bin", dest, progress=False, **options)
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


def test_an_existing_complete_file_is_not_fetched(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"done")
    assert download_file(f"{server.url}/f.bin", dest, progress=False, expected_size=4) == dest
    assert server.requests == []


def test_connection_refused_is_one_line_with_the_url(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/UCF101.rar"
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "x.rar", progress=False, timeout=5)
    assert url in str(caught.value) and "resume" in str(caught.value) and "\n" not in str(caught.value)


def test_http_404_is_a_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server.url}/missing.bin", tmp_path / "m.bin", progress=False)


# --- unpacking -----------------------------------------------------------------------------------


def test_zip_member_escaping_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"ucfTrainTestlist/classInd.txt": b"1 A\n", "../evil": b"pwned"}))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(DownloadError, match="refusing member '../evil'"):
        unpack_zip(archive, target, progress=False)
    assert not (tmp_path / "evil").exists() and not any(target.rglob("*"))


def test_rar_member_escaping_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.rar"
    archive.write_bytes(make_rar({"UCF-101/A/v.avi": b"ok", "../evil": b"pwned"}))
    with pytest.raises(DownloadError, match="refusing member '../evil'"):
        unpack_rar(archive, tmp_path / "target", progress=False)
    assert not (tmp_path / "evil").exists()


def test_handwritten_rar_is_read_and_extracted_by_rarfile(tmp_path):
    import rarfile

    archive = tmp_path / "a.rar"
    archive.write_bytes(make_rar({"UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": b"RIFF...."}))
    with rarfile.RarFile(archive) as rf:
        assert rf.namelist() == ["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"]
    unpack_rar(archive, tmp_path / "out", progress=False)
    assert (tmp_path / "out/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi").read_bytes() == b"RIFF...."


def test_missing_rarfile_package_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rarfile", None)  # makes `import rarfile` fail
    archive = tmp_path / "UCF101.rar"
    archive.write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(DownloadError, match="rarfile package is missing; `pip install rarfile`"):
        unpack_rar(archive, tmp_path / "out", progress=False)
