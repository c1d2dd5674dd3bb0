"""A reader for a directory of image-classification files a user brings: IDX (MNIST's format,
gzipped or not) or npz, each checked (header, counts, shapes, label range) before use.

Recognised layouts (``*`` is any prefix, e.g. ``emnist-letters-``; at most one file per role):

* IDX: ``*train-images-idx3-ubyte[.gz]``, ``*train-labels-idx1-ubyte[.gz]`` and the same with
  ``t10k`` or ``test`` for the test split (MNIST, Fashion-MNIST, KMNIST, EMNIST);
* npz, one array per file (``arr_0``): ``*train-imgs.npz``, ``*train-labels.npz``,
  ``*test-imgs.npz``, ``*test-labels.npz`` (KMNIST's own npz release);
* npz, one file with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras' ``mnist.npz``).

npz files are read with ``allow_pickle=False``: a file cannot run code. Every failure is a
:class:`ConfigError` naming the file (or the directory and what it lacks).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError
from cl_attractors.io import load_npz

Pair = tuple[Tensor, Tensor]  # images [n, rows, cols] uint8, labels [n] int64

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # the Debian package's IDX files

IDX_ROLES = {
    "train images": ("train-images-idx3-ubyte",),
    "train labels": ("train-labels-idx1-ubyte",),
    "test images": ("t10k-images-idx3-ubyte", "test-images-idx3-ubyte"),
    "test labels": ("t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"),
}
NPZ_ROLES = {
    "train images": ("train-imgs.npz",),
    "train labels": ("train-labels.npz",),
    "test images": ("test-imgs.npz",),
    "test labels": ("test-labels.npz",),
}
KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_image_dir(folder: Path, num_classes: int | None, field: str = "data.data_dir") -> tuple[Pair, Pair]:
    """``((x_train, y_train), (x_test, y_test))`` from ``folder`` (layouts: module docstring),
    images ``[n, rows, cols]`` uint8 and labels int64 in ``0..num_classes-1`` (``None``: any label
    >= 0; the network is checked against the labels when a run starts)."""
    if not folder.is_dir():
        raise ConfigError(f"{field}={str(folder)!r} is not a directory")
    for roles, read in ((IDX_ROLES, read_idx), (NPZ_ROLES, read_npz_array)):
        found = {role: _one(folder, suffixes, field) for role, suffixes in roles.items()}
        if all(found.values()):
            arrays = {role: read(path) for role, path in found.items() if path is not None}
            return _checked_splits(arrays, found, num_classes)
    keras = sorted(
        p for p in folder.glob("*.npz") if not any(p.name.endswith(s[0]) for s in NPZ_ROLES.values())
    )
    if len(keras) == 1:
        return _read_keras(keras[0], num_classes)
    raise ConfigError(
        f"{field}={str(folder)!r} holds no image files this reader knows: expected "
        "*train-images-idx3-ubyte[.gz], *train-labels-idx1-ubyte[.gz], *t10k-images-idx3-ubyte[.gz] "
        "and *t10k-labels-idx1-ubyte[.gz] (IDX), *train-imgs.npz ... *test-labels.npz, or one npz "
        "with x_train, y_train, x_test, y_test"
    )


def fashion_mnist_dir(folder: Path = FASHION_MNIST_DIR) -> Path:
    """The Debian package's Fashion-MNIST directory, or one line naming the package to install.

    Debian recompresses the upstream .gz files, so their md5 differs from upstream's while the
    data inside is the same; the files are checked by content (IDX header, counts, labels)."""
    if not folder.is_dir():
        raise ConfigError(
            f"data.source='fashion_mnist' reads {folder}, which the Debian package {FASHION_MNIST_PACKAGE} "
            f"installs: apt-get install -y {FASHION_MNIST_PACKAGE} (or make fashion-mnist), "
            "or give data.data_dir"
        )
    return folder


def has_image_files(folder: Path) -> bool:
    """Whether ``folder`` holds any file of a layout this reader knows."""
    if not folder.is_dir():
        return False
    suffixes = [s for roles in (IDX_ROLES, NPZ_ROLES) for names in roles.values() for s in names]
    return any(p.name.endswith((*suffixes, *(f"{s}.gz" for s in suffixes))) for p in folder.iterdir()) or any(
        folder.glob("*.npz")
    )


def _one(folder: Path, suffixes: tuple[str, ...], field: str) -> Path | None:
    matches = sorted(
        p for s in suffixes for pattern in (f"*{s}", f"*{s}.gz") for p in folder.glob(pattern) if p.is_file()
    )
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise ConfigError(f"{field}={str(folder)!r} has several files for one role ({names}); keep one")
    return matches[0] if matches else None


def read_idx(path: Path) -> Tensor:
    """One IDX file of unsigned bytes (gzipped or not), its header and size checked."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # a torn or foreign .gz (BadGzipFile is an OSError)
        raise ConfigError(f"IDX file {path} cannot be decompressed ({err or type(err).__name__})") from None
    ndim = raw[3] if len(raw) >= 4 and raw[:3] == b"\x00\x00\x08" else 0
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"IDX file {path} is not an IDX file of unsigned bytes (header {raw[:4].hex()!r})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ConfigError(f"IDX file {path} is truncated or too long: {data.size} values for shape {shape}")
    return torch.from_numpy(data.reshape(shape).copy())


def read_npz_array(path: Path) -> Tensor:
    """The one array of an npz file (KMNIST's ``arr_0``)."""
    arrays = load_npz(path)
    if len(arrays) != 1:
        raise ConfigError(f"npz file {path} holds {sorted(arrays)}; expected one array")
    return _as_tensor(next(iter(arrays.values())), path)


def _read_keras(path: Path, num_classes: int | None) -> tuple[Pair, Pair]:
    arrays = load_npz(path)
    missing = [k for k in KERAS_KEYS if k not in arrays]
    if missing:
        raise ConfigError(f"npz file {path} lacks {', '.join(missing)}; expected {', '.join(KERAS_KEYS)}")
    tensors = {role: _as_tensor(arrays[k], path) for role, k in zip(IDX_ROLES, KERAS_KEYS)}
    return _checked_splits(tensors, dict.fromkeys(IDX_ROLES, path), num_classes)


def _as_tensor(array: np.ndarray, path: Path) -> Tensor:
    if array.dtype.kind not in "ui":
        raise ConfigError(f"file {path} holds {array.dtype} values; expected unsigned bytes or integers")
    return torch.from_numpy(np.ascontiguousarray(array))


def _checked_splits(
    arrays: dict[str, Tensor], paths: dict[str, Path | None], num_classes: int | None
) -> tuple[Pair, Pair]:
    train, test = (_checked_pair(arrays, paths, split, num_classes) for split in ("train", "test"))
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ConfigError(
            f"files {paths['train images']} and {paths['test images']} hold images of different "
            f"sizes: {tuple(train[0].shape[1:])} and {tuple(test[0].shape[1:])}"
        )
    return train, test


def _checked_pair(
    arrays: dict[str, Tensor], paths: dict[str, Path | None], split: str, num_classes: int | None
) -> Pair:
    """Images ``[n, rows, cols]`` of bytes and ``n`` labels in ``0..num_classes-1``."""
    x, y = arrays[f"{split} images"], arrays[f"{split} labels"]
    xp, yp = paths[f"{split} images"], paths[f"{split} labels"]
    if x.ndim != 3 or y.ndim != 1:
        raise ConfigError(
            f"files {xp} and {yp} have shapes {tuple(x.shape)} and {tuple(y.shape)}; "
            "expected images [n, rows, cols] and labels [n]"
        )
    if x.dtype != torch.uint8 and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ConfigError(f"file {xp} has pixel values outside 0..255")
    if len(x) != len(y):
        raise ConfigError(f"files {xp} and {yp} differ: {len(x)} images, {len(y)} labels")
    if len(y) == 0:
        raise ConfigError(f"files {xp} and {yp} hold no examples")
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ConfigError(f"file {yp} has label {low}; labels are class indices >= 0")
    if num_classes is not None and high >= num_classes:
        raise ConfigError(
            f"file {yp} has labels {low}..{high}; data.num_classes={num_classes} allows 0..{num_classes - 1}"
        )
    return x.to(torch.uint8), y.long()
