"""The small pieces the timeline pass and the CLI parser are built from (issue 20): the chunk
accumulator, the decoder batch, clip positions, and one `_add_*` per subcommand."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from clipaction.cli.parser import build_parser
from clipaction.timeline.features import _Batch, _ChunkRows, clip_positions
from clipaction.video.timed import Sample, Skipped


def test_chunk_rows_make_a_cache_entry_and_an_empty_chunk_stays_empty() -> None:
    empty = _ChunkRows().entry({"chunk": "0"})
    assert empty.indices.dtype == np.int64 and empty.indices.shape == (0,)
    assert empty.pooled.shape == (0, 0) and empty.embeds.shape == (0, 0)
    rows = _ChunkRows()
    rows.add(3, torch.ones(5), torch.zeros(4))
    rows.add(4, torch.ones(5), torch.ones(4))
    entry = rows.entry({"chunk": "1"})
    assert entry.indices.tolist() == [3, 4] and entry.pooled.shape == (2, 5) and entry.embeds.shape == (2, 4)
    assert entry.info == {"chunk": "1"}


def test_a_batch_tracks_the_highest_settled_sample() -> None:
    batch = _Batch()
    assert batch.resolved == -1
    batch.add(Sample(0, 0.25, np.zeros((2, 2, 3), np.uint8)))
    batch.add(Skipped(1, 4, 0.5, 2.0, "corrupt data"))
    assert batch.resolved == 4 and batch.indices == [0] and len(batch.frames) == 1 and len(batch.skips) == 1


def test_clip_positions_spread_evenly_and_repeat_when_short() -> None:
    assert clip_positions(8, 4) == [1, 3, 5, 7]
    assert clip_positions(2, 4) == [0, 0, 1, 1]


def test_every_subcommand_is_added_in_the_help_order() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(commands.choices) == [
        "zeroshot", "extract", "predict", "run", "report", "demo", "download",
        "benchmark", "bench", "models", "serve", "timeline", "index", "search",
    ]  # fmt: skip
