"""Real handwritten digits: scikit-learn's 8×8 digits (1,797 images), carried by the package.

The images come from the UCI "Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak,
1998) and ship inside scikit-learn, so nothing is downloaded. Pixels are 0..16 ink counts; we scale
them to [0, 1]. The train/val/test split is drawn from the seed, so "three seeds" means three
different splits of the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

IMAGE_SIZE = 8        # pixels per side
NUM_CLASSES = 10
MAX_INK = 16.0        # the largest pixel value in the raw data


@dataclass
class DigitsData:
    train: TensorDataset      # (images (N, 1, 8, 8) float32 in [0, 1], labels (N,) int64)
    val: TensorDataset
    test: TensorDataset
    seed: int                 # the seed the split was drawn from

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_digit_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images (N, 1, 8, 8) in [0, 1] and labels (N,) int64, in file order."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.tensor(raw.images, dtype=torch.float32) / MAX_INK  # (N, 8, 8)
    labels = torch.tensor(raw.target, dtype=torch.int64)              # (N,)
    return images.unsqueeze(1), labels                                 # (N, 1, 8, 8), (N,)


def make_digits(seed: int = 0, *, val_fraction: float = 0.1, test_fraction: float = 0.2,
                limit: int | None = None) -> DigitsData:
    """A seeded split of the digits into train / val / test.

    ``limit`` keeps only the first ``limit`` images of the shuffled order (for quick smoke runs).
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must "
                         f"be in (0, 1) and leave room for training data")
    images, labels = load_digit_arrays()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        if limit < 10:
            raise ValueError(f"limit must be at least 10 images, got {limit}")
        order = order[:limit]
    n = len(order)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    test_idx, val_idx = order[:n_test], order[n_test:n_test + n_val]
    train_idx = order[n_test + n_val:]
    return DigitsData(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        val=TensorDataset(images[val_idx], labels[val_idx]),
        test=TensorDataset(images[test_idx], labels[test_idx]),
        seed=seed,
    )
