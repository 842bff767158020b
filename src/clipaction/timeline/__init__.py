"""Long footage: label untrimmed videos over time (`clipaction timeline`).

grid (pure: times and windows) -> decode (frames at times, streaming) -> features (backend and
cache, chunk by chunk) -> run (window scores) -> segments (pure) -> formats / evaluate / figure.
"""

from clipaction.timeline.config import TimelineConfig
from clipaction.timeline.run import label_videos, score_windows, timeline_realtime_factor

__all__ = ["TimelineConfig", "label_videos", "score_windows", "timeline_realtime_factor"]
