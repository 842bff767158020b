"""The one training loop every few-shot method uses: AdamW over shuffled mini-batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from clipaction.config import TrainSettings


def minimise(
    parameters: Sequence[torch.nn.Parameter],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n_examples: int,
    settings: TrainSettings,
    *,
    weight_decay: float | None = None,
    desc: str = "train",
    progress: bool = False,
) -> list[float]:
    """Minimise `batch_loss(indices)` (a scalar mean over the (B,) example indices given) with
    AdamW: settings' lr, epochs and batch size, and its weight decay unless `weight_decay` is
    given. Examples are shuffled each epoch by a generator seeded with `settings.seed`, so
    training is deterministic on the CPU. Returns the mean loss of each epoch."""
    decay = settings.weight_decay if weight_decay is None else weight_decay
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=decay)
    generator = torch.Generator().manual_seed(settings.seed)
    losses: list[float] = []
    for _ in tqdm(range(settings.epochs), desc=desc, unit="epoch", disable=not progress):
        order = torch.randperm(n_examples, generator=generator)
        total = 0.0
        for start in range(0, n_examples, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            loss = batch_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / n_examples)
    return losses
