"""The reader of user image directories (IDX, npz): layouts, and one line naming the bad file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.train.image_files import fashion_mnist_dir, read_image_dir


def idx_bytes(array: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def arrays(n: int = 7, classes: int = 10, side: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, (n, side, side), dtype=np.uint8), np.arange(n, dtype=np.uint8) % classes


def write_idx(folder: Path, prefix: str = "", gz: bool = True, test: str = "t10k", **bad: bytes) -> None:
    (xtr, ytr), (xte, yte) = arrays(7), arrays(3)
    files = {
        "train-images-idx3-ubyte": idx_bytes(xtr),
        "train-labels-idx1-ubyte": idx_bytes(ytr),
        f"{test}-images-idx3-ubyte": idx_bytes(xte),
        f"{test}-labels-idx1-ubyte": idx_bytes(yte),
    }
    for stem, raw in files.items():
        raw = bad.get(stem.split("-")[1], raw) if stem.startswith(test) else raw
        path = folder / f"{prefix}{stem}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize(("prefix", "gz", "test"), [("", True, "t10k"), ("emnist-digits-", False, "test")])
def test_idx_layouts(tmp_path: Path, prefix: str, gz: bool, test: str) -> None:
    write_idx(tmp_path, prefix, gz, test)
    (xtr, ytr), (xte, yte) = read_image_dir(tmp_path, 10)
    assert xtr.shape == (7, 5, 5) and xte.shape == (3, 5, 5) and xtr.dtype == torch.uint8
    assert ytr.tolist() == list(range(7)) and yte.dtype == torch.int64
    assert torch.equal(xtr, torch.from_numpy(arrays(7)[0]))


def test_kmnist_npz_layout(tmp_path: Path) -> None:
    for split, n in (("train", 7), ("test", 3)):
        x, y = arrays(n)
        np.savez_compressed(tmp_path / f"kmnist-{split}-imgs.npz", x)
        np.savez_compressed(tmp_path / f"kmnist-{split}-labels.npz", y)
    (xtr, ytr), (xte, _) = read_image_dir(tmp_path, 10)
    assert xtr.shape == (7, 5, 5) and xte.shape == (3, 5, 5) and ytr.tolist() == list(range(7))


def test_keras_npz_layout(tmp_path: Path) -> None:
    (xtr, ytr), (xte, yte) = arrays(7), arrays(3)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr.astype(np.int64), x_test=xte, y_test=yte)
    (x, y), _ = read_image_dir(tmp_path, 10)
    assert x.shape == (7, 5, 5) and y.tolist() == list(range(7))


def test_a_pickled_npz_cannot_run_code(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x_train=np.array([object()], dtype=object))
    with pytest.raises(ConfigError, match=r"^npz file .*data\.npz cannot be read"):
        read_image_dir(tmp_path, 10)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"images": idx_bytes(arrays(3)[0])[:-5]}, r"t10k-images-idx3-ubyte is truncated or too long"),
        ({"labels": idx_bytes(np.array([1, 2, 12], np.uint8))}, r"t10k-labels-idx1-ubyte has labels 1..12; "),
        ({"labels": idx_bytes(np.array([1, 2], np.uint8))}, r"differ: 3 images, 2 labels"),
        ({"images": b"\x00\x00\x0d\x03rest"}, r"t10k-images-idx3-ubyte is not an IDX file"),
        ({"images": idx_bytes(arrays(3, side=6)[0])}, r"different sizes: \(5, 5\) and \(6, 6\)"),
    ],
)
def test_bad_files_are_named_in_one_line(tmp_path: Path, bad: dict[str, bytes], message: str) -> None:
    write_idx(tmp_path, gz=False, **bad)
    with pytest.raises(ConfigError, match=message) as info:
        read_image_dir(tmp_path, 10)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_a_torn_gz_is_named(tmp_path: Path) -> None:
    write_idx(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(ConfigError, match=r"train-labels-idx1-ubyte\.gz cannot be decompressed"):
        read_image_dir(tmp_path, 10)


def test_an_unknown_directory_says_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"^data\.data_dir='.*' holds no image files this reader knows"):
        read_image_dir(tmp_path, 10)
    with pytest.raises(ConfigError, match=r"^data\.data_dir='.*missing' is not a directory"):
        read_image_dir(tmp_path / "missing", 10)
    write_idx(tmp_path)
    write_idx(tmp_path, prefix="b-")
    with pytest.raises(ConfigError, match=r"several files for one role"):
        read_image_dir(tmp_path, 10)


def test_a_missing_package_names_it_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        fashion_mnist_dir(tmp_path / "absent")
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value) and "\n" not in str(info.value)
