"""Who may use the page: `--auth USER:PASSWORD`, `--auth-file FILE` and the rule that a page
listening beyond this machine needs a login (or an explicit `--no-auth`). No Gradio here.

Passwords never appear in a message, a repr or a log line: errors name the flag, the file and
the line, never the text that was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from clipaction.errors import ConfigError

#: (user, password) pairs, as Gradio's `launch(auth=...)` takes them.
Accounts = tuple[tuple[str, str], ...]


def parse_account(text: str, *, where: str | None = None, setting: str = "auth") -> tuple[str, str]:
    """`"user:password"` -> ("user", "password") (split at the first colon, so a password may
    hold colons). `where` ("FILE line N") prefixes the error when the text came from a file."""
    user, colon, password = text.partition(":")
    user = user.strip()
    if not colon or not user or not password:
        # the given text is never repeated: it may be a password typed in the wrong place
        message = "expected USER:PASSWORD (a non-empty user and password)"
        raise ConfigError(f"{where}: {message}" if where else message, setting=setting)
    return user, password


def read_auth_file(path: str | Path) -> Accounts:
    """The accounts of a file: one `user:password` a line; blank lines and lines starting with
    `#` are ignored. A malformed line is an error naming the file and the line number."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"cannot read {path}: {reason}", setting="auth_file") from None
    accounts = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        accounts.append(parse_account(line, where=f"{path} line {number}", setting="auth_file"))
    if not accounts:
        raise ConfigError(f"{path} holds no user:password line", setting="auth_file")
    return accounts_of(accounts)


def accounts_of(pairs: Iterable[tuple[str, str]]) -> Accounts:
    """The pairs as `Accounts`, refusing a user named twice (which password would count?)."""
    seen: set[str] = set()
    out = []
    for user, password in pairs:
        if user in seen:
            raise ConfigError(f"user {user!r} is given more than once", setting="auth")
        seen.add(user)
        out.append((user, password))
    return tuple(out)


def gather_accounts(auth: Sequence[str] = (), auth_file: str | Path | None = None) -> Accounts:
    """The accounts of `--auth` values and an `--auth-file` together."""
    pairs = [parse_account(text) for text in auth]
    if auth_file is not None:
        pairs.extend(read_auth_file(auth_file))
    return accounts_of(pairs)


def check_door(*, host: str, public: bool, accounts: Accounts, no_auth: bool) -> None:
    """Refuse a page that anyone on the network could use without a login: listening beyond
    loopback (`public`) needs accounts or an explicit `no_auth`. Both at once is a
    contradiction and refused too."""
    if accounts and no_auth:
        raise ConfigError("give a login (--auth/--auth-file) or --no-auth, not both", setting="no_auth")
    if public and not accounts and not no_auth:
        raise ConfigError(
            f"listening on {host} lets anyone who reaches the port use this page: give a login with "
            "--auth USER:PASSWORD or --auth-file FILE, or say --no-auth to serve it without one",
            setting="auth",
        )
