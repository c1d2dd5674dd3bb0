"""Fashion-MNIST from Debian's dataset-fashion-mnist, read for real (.ci/run installs it; a
missing package fails here with the command to install it, it is never skipped)."""

from __future__ import annotations

import torch

from cl_attractors.train.image_files import fashion_mnist_dir, read_image_dir


def test_debian_fashion_mnist_reads_with_the_expected_counts() -> None:
    (xtr, ytr), (xte, yte) = read_image_dir(fashion_mnist_dir(), 10)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert torch.equal(torch.bincount(ytr), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(yte), torch.full((10,), 1000))
    assert 70 < float(xtr[:1000].float().mean()) < 80  # Fashion-MNIST's mean pixel is ~72.9 of 255
