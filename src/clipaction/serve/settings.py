"""The settings of `clipaction serve` (no Gradio here: the CLI builds these without it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipaction.config import ModelConfig, SamplerConfig
from clipaction.errors import ConfigError
from clipaction.serve.auth import accounts_of, check_door

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ServeConfig:
    """What the page runs on and what it accepts.

    `videos_dir`: a server-side folder whose videos the page offers (None: uploads only);
    `max_upload_mb`: the largest upload accepted, in MB (10**6 bytes); `templates`: seed, clip
    or a template file, as for `predict`; `index`: a search index folder (adds the Search tab);
    `auth`: (user, password) accounts for Gradio's login (kept out of the repr); `no_auth`:
    serve beyond loopback without a login, said explicitly (see `check_door`).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    videos_dir: str | None = None
    max_upload_mb: float = 500.0
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    templates: str = "seed"
    cache_dir: str | None = None
    workers: int = 2
    index: str | None = None
    auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    no_auth: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:  # 0: any free port
            raise ConfigError(f"must be 0-65535; got {self.port}", setting="port")
        if not self.max_upload_mb > 0:
            raise ConfigError(f"must be > 0; got {self.max_upload_mb}", setting="max_upload_mb")
        if self.workers < 1:
            raise ConfigError(f"must be >= 1; got {self.workers}", setting="workers")
        object.__setattr__(self, "auth", accounts_of(self.auth))  # a list becomes a tuple; a user once

    def check_door(self) -> None:
        """Raise ConfigError when the page would listen beyond loopback without a login and
        without `no_auth` (called before anything binds a port)."""
        check_door(host=self.host, public=self.public, accounts=self.auth, no_auth=self.no_auth)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def public(self) -> bool:
        """Whether the server listens beyond this machine's loopback address."""
        return self.host not in LOOPBACK_HOSTS and not self.host.startswith("127.")
