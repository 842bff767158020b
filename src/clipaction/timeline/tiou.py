"""tIoU thresholds of the detection mAP: each benchmark's own, how a user writes them
(`0.5:0.05:0.95` or `0.3,0.5,0.7`) and the key each has in results.json. Pure, no numpy, so
the command line's parser can use it.

ActivityNet's evaluation (`eval_detection.py`) uses `np.linspace(0.5, 0.95, 10)`, whose
values are not all the decimals they stand for (the ninth is 0.8999999999999999, so a tIoU of
exactly 0.9 passes it). The ranges here are built as numpy builds them, so the thresholds
compared are the official ones bit for bit; their keys are short decimals ("0.9").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from clipaction.errors import ConfigError

#: Decimal places a threshold's key keeps; two thresholds with the same key are refused.
KEY_DECIMALS = 6


def linspace(start: float, stop: float, num: int) -> tuple[float, ...]:
    """`np.linspace(start, stop, num)` exactly (numpy: `arange(num) * step + start`, then the
    last value set to `stop`), without numpy."""
    if num == 1:
        return (float(start),)
    step = (stop - start) / (num - 1)
    return (*(i * step + start for i in range(num - 1)), float(stop))


#: Each benchmark's thresholds: ActivityNet's 0.5:0.05:0.95 (its `np.linspace(0.5, 0.95, 10)`),
#: THUMOS14's 0.3:0.1:0.7 (as its papers report it).
BENCHMARK_TIOU: dict[str, tuple[float, ...]] = {
    "activitynet": linspace(0.5, 0.95, 10),
    "thumos14": (0.3, 0.4, 0.5, 0.6, 0.7),
}


def tiou_key(threshold: float) -> str:
    """The threshold as results.json keys it: its shortest decimal after rounding to
    `KEY_DECIMALS` places ("0.5", "0.55", "0.9" for 0.8999999999999999)."""
    return str(round(float(threshold), KEY_DECIMALS))


def check_tiou(thresholds: Sequence[float], setting: str = "timeline.tiou_thresholds") -> tuple[float, ...]:
    """The thresholds as floats, each in (0, 1], no two with the same key; ConfigError else."""
    values = tuple(thresholds)
    if not values:
        raise ConfigError("give at least one tIoU threshold, e.g. 0.5:0.05:0.95", setting=setting)
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and 0 < value <= 1)
        ):
            raise ConfigError(f"a tIoU threshold must be a number in (0, 1]; got {value!r}", setting=setting)
    keys = [tiou_key(v) for v in values]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(
            f"tIoU thresholds {', '.join(repeated)} given more than once (to {KEY_DECIMALS} decimals)", setting=setting
        )
    return tuple(float(v) for v in values)


def parse_tiou(spec: str, setting: str = "timeline.tiou_thresholds") -> tuple[float, ...]:
    """`START:STEP:STOP` (both ends included, built as `np.linspace` builds it, e.g.
    0.5:0.05:0.95 gives ActivityNet's ten), or comma-separated values (0.3,0.5,0.7)."""
    text = spec.strip()
    usage = f"expected START:STEP:STOP (0.5:0.05:0.95) or values (0.3,0.5,0.7); got {spec!r}"
    try:  # only the float()s: ConfigError is a ValueError too
        parts = tuple(float(part) for part in text.split(":" if ":" in text else ","))
    except ValueError:
        raise ConfigError(usage, setting=setting) from None
    if ":" not in text:
        return check_tiou(parts, setting)
    if len(parts) != 3 or not all(map(math.isfinite, parts)) or not (parts[1] > 0 and parts[2] >= parts[0]):
        raise ConfigError(usage, setting=setting)
    start, step, stop = parts
    count = (stop - start) / step
    if abs(count - round(count)) > 1e-6:
        raise ConfigError(f"{spec!r}: {stop:g} - {start:g} is not a whole number of steps of {step:g}", setting=setting)
    values = linspace(start, stop, int(round(count)) + 1)
    return check_tiou(values, setting)


def describe_tiou(thresholds: Sequence[float]) -> str:
    """Short text of the thresholds: "0.5:0.05:0.95" when evenly spaced, else "0.3, 0.5"."""
    keys = [tiou_key(t) for t in thresholds]
    if len(thresholds) > 2:
        step = (thresholds[-1] - thresholds[0]) / (len(thresholds) - 1)
        if step > 0 and all(tiou_key(b - a) == tiou_key(step) for a, b in zip(thresholds, thresholds[1:])):
            return f"{keys[0]}:{tiou_key(step)}:{keys[-1]}"
    return ", ".join(keys)
