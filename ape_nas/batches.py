"""Batches cut from contiguous in-memory tensors: the training path for window sets that fit in memory.

Every benchmark of this field fits: a few thousand windows of a few thousand samples. A ``DataLoader`` over a
``TensorDataset`` indexes one window at a time and stacks them again for every batch; :class:`TensorBatches`
gathers a whole batch with one indexing call (shuffled) or takes a view (in order), from tensors that may live
on the GPU, so no batch is copied from the host during training.

Shuffling draws the same permutations as a seeded shuffling DataLoader,
``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(s))`` (per epoch: one 64-bit draw for the
iterator's base seed, then the sampler's ``randperm`` calls, as many as Lightning's ``len(loader)`` batches
make), so a trial sees its windows in the order the DataLoader path showed them and scores the same, bit for
bit on the CPU.

Example:
    >>> x, y = torch.zeros(10, 1, 4), torch.arange(10)
    >>> [len(b[1]) for b in TensorBatches((x, y), batch_size=4)]
    [4, 4, 2]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


class TensorBatches:
    """Re-iterable batches ``(t[sel] for t in tensors)`` of ``batch_size`` rows; the last one may be smaller.

    ``shuffle``: a new order every iteration (epoch), drawn from a generator seeded once with ``seed``.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, shuffle: bool = False, seed: int = 0):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatches needs tensors with the same number of rows")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: expected 1 or more")
        self.tensors = tuple(tensors)
        self.batch_size, self.shuffle = int(batch_size), shuffle
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def _order(self) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        # a DataLoader epoch as Lightning consumes it (len(loader) batches) draws the iterator's base seed, then
        # RandomSampler's permutation, then, only when a last partial batch makes the sampler run off the end of
        # it, one more (empty-sliced) permutation: the same draws keep the same orders, epoch after epoch
        n = len(self.tensors[0])
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator)
        if n % self.batch_size:
            torch.randperm(n, generator=self.generator)
        return order.to(self.tensors[0].device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order, n, bs = self._order(), len(self.tensors[0]), self.batch_size
        for start in range(0, n, bs):
            if order is None:
                yield tuple(t[start : start + bs] for t in self.tensors)
            else:
                sel = order[start : start + bs]
                yield tuple(t.index_select(0, sel) for t in self.tensors)


def window_batches(
    arrays: Sequence[np.ndarray],
    rows: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> TensorBatches:
    """:class:`TensorBatches` of the rows ``rows`` of each array, gathered once into contiguous tensors on
    ``device`` (the training device: on a GPU the windows stay there for every epoch)."""
    tensors = [torch.from_numpy(np.ascontiguousarray(a[rows])).to(device) for a in arrays]
    return TensorBatches(tensors, batch_size, shuffle=shuffle, seed=seed)
