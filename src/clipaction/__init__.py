"""clipaction: zero-shot human action recognition in videos with CLIP."""

__version__ = "0.1.0"
