"""Malformed inputs for the bad-input table (tests/system/test_bad_input.py): YAML files, checkpoints
and MNIST-format folders, each broken in one way."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch


def idx_file(shape: tuple[int, ...], data: bytes) -> bytes:
    """An IDX file of unsigned bytes (MNIST's format)."""
    return b"\x00\x00\x08" + bytes([len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape) + data


def write_idx_dir(folder: Path, **replace: bytes) -> Path:
    """A tiny MNIST-format folder (60 train, 20 test images) with some files ``replace``d."""
    files = {
        "train-images-idx3-ubyte": idx_file((60, 28, 28), bytes(i % 251 for i in range(60 * 784))),
        "train-labels-idx1-ubyte": idx_file((60,), bytes(i % 10 for i in range(60))),
        "t10k-images-idx3-ubyte": idx_file((20, 28, 28), bytes(i % 241 for i in range(20 * 784))),
        "t10k-labels-idx1-ubyte": idx_file((20,), bytes(i % 10 for i in range(20))),
    }
    for name, content in replace.items():
        files.pop(name.removesuffix(".gz"), None)
        files[name] = content
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


BAD_YAML = {
    "syntax.yaml": "data: [1, 2\n",
    "tab.yaml": "data:\n\tnum_tasks: 2\n",
    "tag.yaml": "data: !!python/object/apply:os.system ['true']\n",
    "list.yaml": "- 1\n- 2\n",
    "defaults_mapping.yaml": "defaults:\n  - {a: b}\n",
    "data_scalar.yaml": "data: 3\n",
    "a1_inf.yaml": "class_path: cl_attractors.methods.sticky.StickyGradient\ninit_args:\n  a1: .inf\n"
    "  mu: 0.00363\n  sigma: 0.0204\n  gamma: 4.7\n  zeta: 0.000574\n  lam: 4.12\n"
    "  sticky: true\n  l1: true\n  smart_init: true\n",
    "lr_inf.yaml": "model:\n  optimizer:\n    init_args:\n      lr: .inf\n",
}


def write_bad_files(folder: Path, checkpoint: Path) -> Path:
    """Malformed inputs in ``folder``: the YAML files of ``BAD_YAML``, checkpoints (random bytes,
    empty, truncated, foreign, another model's: ``checkpoint``, a 16-unit-incompatible one) and
    MNIST folders (truncated, empty, a label out of range, counts that differ, a torn .gz)."""
    for name, text in BAD_YAML.items():
        (folder / name).write_text(text)
    raw = checkpoint.read_bytes()
    (folder / "random.ckpt").write_bytes(bytes((i * 7919) % 256 for i in range(4096)))
    (folder / "empty.ckpt").write_bytes(b"")
    (folder / "truncated.ckpt").write_bytes(raw[: len(raw) // 2])
    torch.save({"a": 1}, folder / "foreign.ckpt")
    shutil.copy(checkpoint, folder / "other_model.ckpt")
    images = idx_file((60, 28, 28), bytes(60 * 784))
    write_idx_dir(folder / "idx_truncated", **{"train-images-idx3-ubyte": images[:1000]})
    write_idx_dir(folder / "idx_empty", **{"train-images-idx3-ubyte": b""})
    write_idx_dir(folder / "idx_label_12", **{"train-labels-idx1-ubyte": idx_file((60,), bytes([12] * 60))})
    write_idx_dir(folder / "idx_counts", **{"train-labels-idx1-ubyte": idx_file((50,), bytes(50))})
    write_idx_dir(folder / "idx_gz_truncated", **{"train-images-idx3-ubyte.gz": gzip.compress(images)[:-10]})
    return folder
