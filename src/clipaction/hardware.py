"""What this machine's CPU can compute fast, read from /proc/cpuinfo, and the rule built on it:
`--precision bf16` runs on the CPU only where the CPU has bf16 units (AMX-BF16 or AVX512-BF16).

Without them torch emulates bf16 and the image encoder gets slower than fp32, so bf16 is
refused with one line (ConfigError) unless CLIPACTION_ALLOW_SLOW_BF16=1 says to run it anyway
(then a warning). A foundation module: it imports nothing from the pipeline layers, so models,
the bench and the CLI can all ask it. Tests inject the features by monkeypatching `cpu_features`.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from clipaction.errors import ConfigError

log = logging.getLogger(__name__)

#: The /proc/cpuinfo flags that decide the fast paths (bf16, int8, fp16), all x86.
FLAGS = (
    "amx_bf16",
    "amx_tile",
    "amx_int8",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "avx512f",
    "avx2",
    "avx512_fp16",
)
CPUINFO = "/proc/cpuinfo"
#: Set to 1 to run bf16 on a CPU without bf16 units anyway (slower than fp32).
ALLOW_SLOW_BF16 = "CLIPACTION_ALLOW_SLOW_BF16"


@functools.cache
def _read_flags(path: str) -> frozenset[str]:
    """The flags of the first processor listed in `path` (empty when it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_features(cpuinfo: str | Path = CPUINFO) -> dict[str, bool]:
    """Each of FLAGS -> whether this CPU has it (all False where `cpuinfo` is missing or lists
    no flags, e.g. not Linux or not x86)."""
    flags = _read_flags(str(cpuinfo))
    return {flag: flag in flags for flag in FLAGS}


def native_bf16(features: dict[str, bool] | None = None) -> bool:
    """True when the CPU computes bf16 in hardware: AMX-BF16 tiles or AVX512-BF16 instructions
    (`features`: `cpu_features()` when None)."""
    features = cpu_features() if features is None else features
    return bool(features.get("amx_bf16") or features.get("avx512_bf16"))


def check_bf16_cpu(setting: str = "model.precision") -> None:
    """Refuse bf16 on a CPU without bf16 units (one-line ConfigError naming `setting`), unless
    CLIPACTION_ALLOW_SLOW_BF16=1, which logs a warning and lets it run."""
    if native_bf16():
        return
    if os.environ.get(ALLOW_SLOW_BF16, "").strip() in ("1", "true", "yes"):
        log.warning(
            "bf16 on a CPU without AMX or AVX512-BF16: torch emulates it and the image encoder is "
            "likely slower than fp32 (%s=1 asked for it anyway)",
            ALLOW_SLOW_BF16,
        )
        return
    raise ConfigError(
        "bf16 needs a CPU with AMX or AVX512-BF16 (this one has neither); use fp32 or int8 "
        f"(or set {ALLOW_SLOW_BF16}=1 to run it slowly anyway)",
        setting=setting,
    )
