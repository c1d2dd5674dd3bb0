"""Permutations, batches and the data sources (no network; tiny data unless the file is the subject)."""

import gzip
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Permuted, TaskFamily, make_permutations
from cl_attractors.train.sources import (
    ConfigError,
    NumpyOnlyUnpickler,
    embedded_path,
    load_embedded,
    load_torchvision,
)
from tests.helpers import subclasses


def tiny_data(**kwargs: object) -> TaskData:
    """A synthetic permuted task sequence (64 examples unless told)."""
    args: dict = {"family": Permuted(), "source": "synthetic", "synthetic_size": 64, "num_tasks": 2}
    dm = TaskData(**{**args, "batch_size": 16, **kwargs})
    dm.setup()
    return dm


def test_permutations_are_bijections_and_seeded() -> None:
    p = make_permutations(5, 784, seed=1)
    assert torch.equal(p.sort(dim=1).values, torch.arange(784).expand(5, 784))
    assert torch.equal(p, make_permutations(5, 784, seed=1))
    assert not torch.equal(p, make_permutations(5, 784, seed=2))
    assert len({tuple(row.tolist()) for row in p}) == 5


def test_identity_first_leaves_task_zero_unpermuted() -> None:
    p = make_permutations(3, 784, seed=0, identity_first=True)
    assert torch.equal(p[0], torch.arange(784))
    assert not torch.equal(p[1], torch.arange(784))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 1.0])
def test_shared_positions_stay_in_place_in_every_task(fraction: float) -> None:
    p = make_permutations(6, 784, seed=3, shared_fraction=fraction)
    fixed = (p == torch.arange(784)).all(dim=0)
    assert fixed.sum() >= round(fraction * 784)


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_the_shared_positions_depend_on_the_seed(fraction: float) -> None:
    def shared(seed: int) -> torch.Tensor:
        return (make_permutations(6, 784, seed=seed, shared_fraction=fraction) == torch.arange(784)).all(
            dim=0
        )

    assert not torch.equal(shared(3), shared(4))


@pytest.mark.parametrize("family_cls", subclasses(TaskFamily), ids=lambda c: c.__qualname__)
def test_every_family_is_a_function_of_its_seed(family_cls: type[TaskFamily]) -> None:
    """The family contract: drawn from the seed alone, same shapes out as in, labels per example,
    an output mask of booleans if any."""
    x, y = torch.rand(8, 784, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 10
    runs = []
    for seed in (5, 5, 6):
        family = family_cls()
        family.setup(3, 784, seed)
        runs.append((family.state_dict(), [family.inputs(x, t) for t in range(3)]))
    (state, inputs), (again, inputs_again), (other, _) = runs
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    assert all(torch.equal(a, b) for a, b in zip(inputs, inputs_again))
    assert not state or any(not torch.equal(state[k], other[k]) for k in state)
    for task in range(3):
        assert inputs[task].shape[0] == len(y) and family.labels(y, task).shape == y.shape
        mask = family.output_mask(task, task)
        assert mask is None or mask.dtype == torch.bool


def test_train_and_eval_batches_apply_the_same_permutation() -> None:
    dm = tiny_data(seed=5)
    x_raw, _y_raw = dm.loaded().split("train")
    perm = dm.family.permutations[1]
    order = dm.shuffle_order(1, 0, 64)
    xb, yb = next(iter(dm.train_batches(1)))
    assert xb.shape == (16, 784) and yb.shape == (16,) and xb.dtype == torch.float32
    assert torch.equal(xb, x_raw[order[:16]][:, perm])
    xe, _ = next(iter(dm.eval_batches(1, "test")))
    x_test, _ = dm.loaded().split("test")
    assert torch.equal(xe, x_test[: len(xe)][:, perm])


def test_loader_lengths_and_full_coverage() -> None:
    dm = tiny_data(synthetic_size=100, num_tasks=1, batch_size=32, steps_per_chunk=3)
    batches = list(dm.train_batches(0))
    assert len(batches) == len(dm.train_batches(0)) == 4
    assert sum(len(y) for _, y in batches) == 100
    chunks = list(dm.train_dataloader())
    assert [len(c) for c in chunks] == [3, 1] and len(dm.train_dataloader()) == 2
    assert len(dm.val_dataloader()) == 1


def test_shuffle_depends_on_task_and_epoch_only() -> None:
    dm = tiny_data(seed=1)
    assert torch.equal(dm.shuffle_order(1, 0, 64), dm.shuffle_order(1, 0, 64))
    assert not torch.equal(dm.shuffle_order(1, 0, 64), dm.shuffle_order(1, 1, 64))
    assert not torch.equal(dm.shuffle_order(0, 0, 64), dm.shuffle_order(1, 0, 64))


def test_sample_uses_the_given_generator() -> None:
    dm = tiny_data()
    a = dm.sample(1, 10, torch.Generator().manual_seed(0))
    b = dm.sample(1, 10, torch.Generator().manual_seed(0))
    assert a[0].shape == (10, 784) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


class _Evil:
    def __reduce__(self) -> tuple:
        return (Path("/tmp/cl_attractors_pwned").touch, ())


def test_restricted_unpickler_refuses_code_without_running_it(tmp_path: Path) -> None:
    marker = Path("/tmp/cl_attractors_pwned")
    marker.unlink(missing_ok=True)
    payload = pickle.dumps(_Evil())
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    assert not marker.exists()


def test_restricted_unpickler_admits_numpy_arrays() -> None:
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arr, protocol=2))).load()
    assert np.array_equal(out, arr)


def test_evil_file_with_matching_checksum_is_still_refused(tmp_path: Path) -> None:
    import hashlib

    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps(_Evil())))
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_embedded(bad, sha256=digest)


def test_modified_or_truncated_embedded_file_is_refused(tmp_path: Path) -> None:
    src = embedded_path()
    truncated = tmp_path / "mnist.pkl.gz"
    truncated.write_bytes(src.read_bytes()[:100_000])
    with pytest.raises(ConfigError, match="sha256"):
        load_embedded(truncated)
    modified = tmp_path / "m2.pkl.gz"
    shutil.copy(src, modified)
    with modified.open("r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ConfigError, match="modified or truncated"):
        load_embedded(modified)


def test_torchvision_directory_without_files_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--data.download true"):
        load_torchvision("mnist", str(tmp_path), False, 10000, 0)
    with pytest.raises(ConfigError, match="data.data_dir is required"):
        load_torchvision("kmnist", None, False, 10000, 0)


def test_torchvision_format_directory_is_read_with_a_seeded_validation_split(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def idx(name: str, arr: np.ndarray, magic: int) -> None:
        header = np.array([magic, *arr.shape], dtype=">i4").tobytes()
        (raw / name).write_bytes(header + arr.astype(np.uint8).tobytes())

    idx("train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28)), 2051)
    idx("train-labels-idx1-ubyte", rng.integers(0, 10, (30,)), 2049)
    idx("t10k-images-idx3-ubyte", rng.integers(0, 256, (7, 28, 28)), 2051)
    idx("t10k-labels-idx1-ubyte", rng.integers(0, 10, (7,)), 2049)
    s = load_torchvision("mnist", str(tmp_path), False, val_size=10, split_seed=0)
    assert s.x_train.shape == (20, 784) and s.x_val.shape == (10, 784) and s.x_test.shape == (7, 784)
    assert float(s.x_train.max()) <= 1.0
    again = load_torchvision("mnist", str(tmp_path), False, val_size=10, split_seed=0)
    assert torch.equal(s.x_val, again.x_val)


@pytest.mark.slow
def test_embedded_mnist_has_the_classic_split() -> None:
    s = load_embedded()
    assert s.x_train.shape == (50000, 784) and s.x_val.shape == (10000, 784)
    assert s.x_test.shape == (10000, 784) and s.y_train.max() == 9
    assert float(s.x_train.min()) >= 0.0 and float(s.x_train.max()) <= 1.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"source": "cifar"}, "data.source"),
        ({"num_tasks": 0}, "data.num_tasks"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"eval_split": "train"}, "data.eval_split"),
        ({"epochs_per_task": 0}, "data.epochs_per_task"),
    ],
)
def test_bad_data_arguments_raise_one_line_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        TaskData(**{"family": Permuted(), "num_tasks": 2, "batch_size": 16, **kwargs})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_a_bad_family_argument_raises_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"data.family.init_args.shared_fraction=1.5 is not allowed"):
        Permuted(shared_fraction=1.5)


def test_flat_folder_of_gzipped_idx_files_is_read(tmp_path: Path) -> None:
    """The layout of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)."""
    rng = np.random.default_rng(1)

    def idx(name: str, arr: np.ndarray, magic: int) -> None:
        header = np.array([magic, *arr.shape], dtype=">i4").tobytes()
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))

    idx("train-images-idx3-ubyte", rng.integers(0, 256, (25, 28, 28)), 2051)
    idx("train-labels-idx1-ubyte", rng.integers(0, 10, (25,)), 2049)
    idx("t10k-images-idx3-ubyte", rng.integers(0, 256, (5, 28, 28)), 2051)
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte"):
        load_torchvision("fashion_mnist", str(tmp_path), False, val_size=5, split_seed=0)
    idx("t10k-labels-idx1-ubyte", rng.integers(0, 10, (5,)), 2049)
    s = load_torchvision("fashion_mnist", str(tmp_path), False, val_size=5, split_seed=0)
    assert s.x_train.shape == (20, 784) and s.x_test.shape == (5, 784) and s.y_test.dtype == torch.int64
