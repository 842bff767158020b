"""The door of `clipaction serve`: --auth, --auth-file, the refusal to listen beyond loopback
without a login (unless --no-auth), and, through HTTP on a real server with a login, that a
visitor without a session reaches nothing but the login page (every route of the app is
tried) while a logged-in one uses the page."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from clipaction.cli import main
from clipaction.errors import ConfigError
from clipaction.serve import ServeConfig
from clipaction.serve.auth import check_door, gather_accounts, parse_account, read_auth_file

PASSWORD = "s3cret:with-colon"
ACCOUNTS = [("ann", PASSWORD), ("bob", "hunter2")]


def test_an_account_is_user_colon_password_and_errors_never_repeat_the_text():
    assert parse_account(f"ann:{PASSWORD}") == ("ann", PASSWORD)  # split at the first colon
    assert parse_account(" ann :pw ") == ("ann", "pw ")  # the user is trimmed, the password kept
    for bad in ("annpw-no-colon", ":pw-no-user", "ann:", ""):
        with pytest.raises(ConfigError, match="expected USER:PASSWORD") as caught:
            parse_account(bad)
        assert caught.value.setting == "auth"
        assert not bad or bad not in str(caught.value)
    with pytest.raises(ConfigError, match="'ann' is given more than once"):
        gather_accounts(["ann:a", "bob:b", "ann:c"])


def test_an_auth_file_skips_blanks_and_comments_and_names_a_bad_line(tmp_path):
    good = tmp_path / "users.txt"
    good.write_text(f"# the lab\n\nann:{PASSWORD}\n   # indented comment\nbob:hunter2\n")
    assert read_auth_file(good) == tuple(ACCOUNTS)
    assert gather_accounts(["carol:pw"], good) == (("carol", "pw"), *ACCOUNTS)

    bad = tmp_path / "bad.txt"
    bad.write_text(f"ann:{PASSWORD}\n\nbob hunter2\n")  # no colon: a typo that holds a password
    with pytest.raises(ConfigError) as caught:
        read_auth_file(bad)
    message = str(caught.value)
    assert f"{bad} line 3: expected USER:PASSWORD" in message and "hunter2" not in message
    assert caught.value.setting == "auth_file"

    with pytest.raises(ConfigError, match="cannot read"):
        read_auth_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="holds no user:password line"):
        read_auth_file(empty)


def test_the_door_refuses_a_page_beyond_loopback_without_a_login():
    accounts = tuple(ACCOUNTS)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        ServeConfig(host=host).check_door()  # this machine only: no login needed
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(ConfigError, match=f"listening on {re.escape(host)} lets anyone") as caught:
            ServeConfig(host=host).check_door()
        assert caught.value.setting == "auth"
        ServeConfig(host=host, auth=accounts).check_door()
        ServeConfig(host=host, no_auth=True).check_door()
    with pytest.raises(ConfigError, match="not both"):
        check_door(host="0.0.0.0", public=True, accounts=accounts, no_auth=True)


def test_passwords_stay_out_of_the_config_repr():
    config = ServeConfig(auth=ACCOUNTS)
    assert config.auth == tuple(ACCOUNTS)  # a list becomes a tuple: the config stays hashable data
    assert PASSWORD not in repr(config) and "hunter2" not in repr(config)


def test_the_door_opens_only_the_login_page_and_fetches_no_url():
    pytest.importorskip("starlette", reason='the ui extra is not installed (pip install -e ".[ui]")')
    from clipaction.serve.door import fetches_a_url, is_open

    for path in ("/", "/login", "/assets/index-Ab1.js", "/static/img/logo.svg", "/theme.css", "/favicon.ico"):
        assert is_open(path), path
    for path in ("/config", "/gradio_api/info", "/gradio_api/upload", "/gradio_api/file=/tmp/x.mp4", "/assets"):
        assert not is_open(path), path
    assert fetches_a_url("/gradio_api/file=https://example.com/a.mp4") and fetches_a_url("/file=HTTP:/x")
    assert not fetches_a_url("/gradio_api/file=/videos/http:/a.mp4") and not fetches_a_url("/config")


class _NoServer:
    """Stands in for `start_page` in CLI tests: records the config instead of binding a port."""

    def __init__(self) -> None:
        self.configs: list[ServeConfig] = []

    def __call__(self, config: ServeConfig, search=None):
        self.configs.append(config)
        return SimpleNamespace(url=f"http://{config.host}:{config.port}/", wait=lambda stop=None: None)


def test_the_cli_refuses_a_public_host_without_a_login_before_binding(monkeypatch, capsys, tmp_path):
    import clipaction.serve

    started = _NoServer()
    monkeypatch.setattr(clipaction.serve, "start_page", started)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("clipaction: error: --auth: listening on 0.0.0.0 lets anyone")
    assert "--no-auth" in err
    assert not started.configs  # refused before the page was built or a port bound

    # a malformed --auth-file is one line naming the file and the line, without its text
    users = tmp_path / "users.txt"
    users.write_text(f"ann:{PASSWORD}\nbob hunter2\n")
    assert main(["serve", "--host", "0.0.0.0", "--auth-file", str(users)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"clipaction: error: --auth-file: {users} line 2: expected USER:PASSWORD " + (
        "(a non-empty user and password)"
    )
    assert PASSWORD not in captured.err + captured.out and "hunter2" not in captured.err + captured.out
    assert main(["serve", "--auth", "ann"]) == 2 and "--auth: expected USER:PASSWORD" in capsys.readouterr().err
    assert not started.configs


def test_the_cli_starts_with_a_login_or_an_explicit_no_auth(monkeypatch, capsys, tmp_path):
    import clipaction.serve

    started = _NoServer()
    monkeypatch.setattr(clipaction.serve, "start_page", started)
    users = tmp_path / "users.txt"
    users.write_text("# lab\nbob:hunter2\n")
    assert main(["serve", "--host", "0.0.0.0", "--auth", f"ann:{PASSWORD}", "--auth-file", str(users)]) == 0
    assert main(["serve", "--host", "0.0.0.0", "--no-auth"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("clipaction serve: open http://0.0.0.0:7860/") == 2
    assert PASSWORD not in captured.out + captured.err and "hunter2" not in captured.out + captured.err
    with_login, without = started.configs
    assert with_login.auth == tuple(ACCOUNTS) and not with_login.no_auth
    assert without.auth == () and without.no_auth
    assert main(["serve", "--auth", "ann:pw", "--no-auth"]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_library_refuses_too_before_building_anything(monkeypatch):
    import clipaction.serve

    monkeypatch.setattr(clipaction.serve, "make_page", lambda *a, **k: pytest.fail("built a page"))
    with pytest.raises(ConfigError, match="listening on 0.0.0.0"):
        clipaction.serve.start_page(ServeConfig(host="0.0.0.0"))


# -- a real server with a login ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def door_page(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("gradio", reason='the ui extra is not installed (pip install -e ".[ui]")')
    from clipaction.config import ModelConfig
    from clipaction.serve import start_page
    from clipaction.testing.footage import Scene, write_scenes

    root = tmp_path_factory.mktemp("door")
    video = write_scenes(root / "videos" / "walk.mp4", [Scene(2, 0), Scene(2, 1)], width=96, height=64)
    config = ServeConfig(
        port=_free_port(),
        model=ModelConfig(name_or_path=str(tiny_model_dir)),
        cache_dir=str(root / "cache"),
        auth=ACCOUNTS,
    )

    def search(query: str, top: int) -> list[dict]:
        return [{"video": str(video), "start": 0.0, "end": 2.0, "score": 0.9}]

    page = start_page(config, search=search)
    yield SimpleNamespace(page=page, video=video, root=root)
    page.close()


def _routes(app) -> list[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route the server answers, routers included."""
    found = []

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if path is not None:
                full = path if path.startswith(prefix) else prefix + path
                found.append((full, set(getattr(route, "methods", None) or {"GET"})))
                continue
            inner = getattr(route, "original_router", None) or getattr(route, "app", None)
            if inner is not None and hasattr(inner, "routes"):
                walk(inner.routes, getattr(inner, "prefix", "") or "")

    walk(app.routes)
    return found


@pytest.mark.slow
def test_without_a_login_nothing_but_the_login_page_answers(door_page):
    import httpx
    from gradio_client import Client

    from clipaction.serve.door import is_open

    page = door_page.page
    routes = _routes(page.demo.server_app)
    paths = {path for path, _ in routes}
    assert {"/config", "/gradio_api/upload", "/gradio_api/queue/join", "/gradio_api/heartbeat/{session_hash}"} <= paths
    anonymous = httpx.Client(base_url=page.url.rstrip("/"), timeout=30)
    tried = 0
    for path, methods in routes:
        if is_open(path):
            continue
        url = re.sub(r"\{[^}]*\}", "x", path)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            with anonymous.stream(method, url) as response:  # streamed: an open route may never end
                assert response.status_code == 401, f"{method} {path}: {response.status_code}"
            tried += 1
    assert tried >= 40  # the walk reached Gradio's API router, not just the top level

    # The page itself is only the login form: no component, no model, no API.
    home = anonymous.get("/")
    assert home.status_code == 200 and '"auth_required":true' in home.text.replace(" ", "")
    assert "model-line" not in home.text and str(door_page.video) not in home.text
    # Files, uploads and calls are refused, and an upload leaves nothing behind.
    assert anonymous.get(f"/gradio_api/file={door_page.video}").status_code == 401
    before = sorted(p.name for p in page.workdir.rglob("*"))
    response = anonymous.post("/gradio_api/upload", files={"files": ("x.mp4", door_page.video.read_bytes())})
    assert response.status_code == 401 and sorted(p.name for p in page.workdir.rglob("*")) == before
    # A wrong password gets no session.
    assert anonymous.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
    assert anonymous.get("/config").status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - gradio_client's error for a locked app varies by version
        Client(page.url, verbose=False)


@pytest.mark.slow
def test_with_a_login_the_page_works(door_page):
    import httpx
    from gradio_client import Client

    page = door_page.page
    session = httpx.Client(base_url=page.url.rstrip("/"), timeout=30)
    assert session.post("/login", data={"username": "ann", "password": PASSWORD}).status_code == 200
    config = session.get("/config")
    assert config.status_code == 200 and "model-line" in config.text
    assert session.get("/gradio_api/info").status_code == 200
    with session.stream("GET", "/gradio_api/heartbeat/x") as heartbeat:  # an endless stream: status only
        assert heartbeat.status_code == 200
    # logged in or not, the server fetches no URL for anyone (Gradio's file route would)
    fetch = session.get("/gradio_api/file=https://example.com/clip.mp4")
    assert fetch.status_code == 403 and "files, not URLs" in fetch.text

    client = Client(page.url, auth=("bob", "hunter2"), verbose=False)
    items, summary, *_ = client.predict("someone walking", api_name="/search")
    assert "1 moment(s)" in summary and "walk.mp4 · 0:00.0–0:02.0" in items[0]["caption"]
    # The indexed video is served to a logged-in session, and only to it.
    assert session.get(f"/gradio_api/file={door_page.video}").status_code == 200
    assert httpx.get(f"{page.url}gradio_api/file={door_page.video}", timeout=30).status_code == 401


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_command_with_an_auth_file_locks_the_page_and_prints_no_password(tiny_model_dir, tmp_path):
    import signal
    import subprocess
    import sys

    import httpx

    users = tmp_path / "users.txt"
    users.write_text(f"# who may use it\nann:{PASSWORD}\n")
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "clipaction.cli", "serve", "--port", str(port), "--model", str(tiny_model_dir),
               "--cache-dir", str(tmp_path / "cache"), "--auth-file", str(users), "--no-progress"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, statuses = time.monotonic() + 120, None
        while statuses is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with httpx.Client(base_url=base, timeout=10) as http:
                    anonymous = http.get("/config").status_code
                    logged_in = http.post("/login", data={"username": "ann", "password": PASSWORD}).status_code
                    statuses = (anonymous, logged_in, http.get("/config").status_code)
            except httpx.TransportError:
                time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert statuses == (401, 200, 200)
    assert out.startswith(f"clipaction serve: open http://127.0.0.1:{port}/")
    assert PASSWORD not in out + err
    assert not list(Path(tmp_path).glob("clipaction-serve-*"))
