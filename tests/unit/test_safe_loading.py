"""The safety mechanisms of layer 0, each where its input starts (issue 21):

* every file the project did not just write is read by :mod:`cl_attractors.io` only (tensors
  weights-only, YAML bounded): checked on the source, then on planted files;
* every text file is opened with an explicit encoding (an ASCII locale must not break a run);
* every message is one bounded line with its secrets masked (:func:`cl_attractors.errors.bounded`),
  checked on generated URLs and passwords.
"""

from __future__ import annotations

import ast
import os
import pickle
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_attractors import errors
from cl_attractors.errors import MAX_MESSAGE, ConfigError, bounded, mask_secrets, one_line, register_secret
from cl_attractors.io import MAX_YAML_NODES, load_tensors, safe_yaml
from tests.helpers import ROOT

SOURCES = sorted(
    [ROOT / "cli.py", *(ROOT / "cl_attractors").rglob("*.py"), *(ROOT / "callbacks").rglob("*.py")]
)
# loaders that can run code or expand without bound; only io.py calls them
UNSAFE = re.compile(
    r"\btorch\.load\(|\bpickle\.loads?\(|\byaml\.(?:safe_|unsafe_|full_)?load\(|\bnp\.load\(|"
    r"\bnumpy\.load\(|\bmarshal\.|\bshelve\.|\bdill\b|\bjoblib\.load|\beval\(|\bexec\("
)
ALLOWED = {
    "cl_attractors/io.py": "the one reader",
    # a pickle.Unpickler whose find_class admits numpy arrays only (tests/contracts/test_data.py)
    "cl_attractors/train/sources.py": "NumpyOnlyUnpickler",
}


def test_only_io_loads_files_that_can_carry_code() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SOURCES
        if path.relative_to(ROOT).as_posix() not in ALLOWED
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert not offenders, "route these through cl_attractors.io (load_tensors, read_yaml, safe_yaml):\n" + (
        "\n".join(offenders)
    )


def test_every_npz_read_refuses_pickles() -> None:
    """The one reader's ``np.load`` calls (npz files a user brings) pass ``allow_pickle=False``."""
    tree = ast.parse((ROOT / "cl_attractors" / "io.py").read_text(encoding="utf-8"))
    loads = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "load"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("np", "numpy")
    ]
    assert loads, "io.py reads npz files with np.load"
    for node in loads:
        flags = {k.arg: k.value for k in node.keywords}
        value = flags.get("allow_pickle")
        assert isinstance(value, ast.Constant) and value.value is False, ast.unparse(node)


def _text_opens_without_encoding(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        attribute = isinstance(func, ast.Attribute)
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        # open(path, mode), os.fdopen(fd, mode), Path(...).open(mode), .read_text(), .write_text(s)
        if not (name == "open" or (attribute and name in ("fdopen", "read_text", "write_text"))):
            continue
        if "encoding" in {k.arg for k in node.keywords}:
            continue
        modes = [k.value for k in node.keywords if k.arg == "mode"]
        if name in ("open", "fdopen"):
            path_method = attribute and name == "open" and not isinstance(func.value, ast.Name)
            modes += node.args[:1] if path_method else node.args[1:2]
        if any(isinstance(m, ast.Constant) and "b" in str(m.value) for m in modes):
            continue
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_text_file_is_opened_with_an_explicit_encoding() -> None:
    offenders = [hit for path in SOURCES for hit in _text_opens_without_encoding(path)]
    assert not offenders, "give encoding='utf-8' (an ASCII locale breaks these):\n" + "\n".join(offenders)


class Planted:
    """A pickle that writes a marker file when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "code ran"))


def plant(path: Path, marker: Path, wrap: bool = True) -> Path:
    """A file in torch.save's format whose unpickling would run code (marker written)."""
    obj = {"state_dict": {"w": torch.zeros(2)}, "loops": {}, "optimizer_states": [], "x": Planted(marker)}
    torch.save(obj if wrap else Planted(marker), path)
    return path


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("wrap", [False, True])
def test_load_tensors_refuses_a_planted_pickle_without_running_it(
    tmp_path: Path, mmap: bool, wrap: bool
) -> None:
    marker = tmp_path / "marker"
    path = plant(tmp_path / "task_00.ckpt", marker, wrap)
    with pytest.raises(ConfigError, match="is not a readable checkpoint") as err:
        load_tensors(path, mmap=mmap)
    assert not marker.exists()
    assert "\n" not in str(err.value)


def test_load_tensors_refuses_code_even_when_the_environment_asks_for_full_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "marker"
    with pytest.raises(ConfigError):
        load_tensors(plant(tmp_path / "x.pt", marker))
    assert not marker.exists()


def test_load_tensors_reads_tensors_and_plain_data(tmp_path: Path) -> None:
    obj = {"w": torch.arange(3), "n": 1, "s": "x", "l": [1.5, None]}
    torch.save(obj, tmp_path / "ok.pt")
    back = load_tensors(tmp_path / "ok.pt")
    assert torch.equal(back["w"], obj["w"]) and back["l"] == obj["l"]


def test_plain_pickles_are_refused_too(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "p.pt").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(ConfigError):
        load_tensors(tmp_path / "p.pt")
    assert not marker.exists()


# ---- bounded YAML -------------------------------------------------------------------------------
def bomb(width: int, depth: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{d}: &a{d} [{', '.join([f'*a{d - 1}'] * width)}]" for d in range(1, depth)]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.integers(1, 12))
def test_alias_bombs_are_refused_before_expanding_small_aliases_load(width: int, depth: int) -> None:
    text = bomb(width, depth)
    expanded = sum(width**d for d in range(1, depth + 1)) + 2 * depth  # a bound from below
    if expanded > 2 * MAX_YAML_NODES:
        with pytest.raises(ConfigError, match="alias bomb") as err:
            safe_yaml(text, "x.yaml")
        assert len(one_line(err.value)) <= MAX_MESSAGE + 40
    elif expanded < MAX_YAML_NODES // 4:
        assert safe_yaml(text, "x.yaml") == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text", ["a: &a [*a]", "&a {x: *a}", 'x: "a\\0b"', "x: [1, 2]\n---\ny: 1", "!!python/object:os.system x"]
)
def test_recursive_nul_multi_document_and_tagged_yaml_are_refused(text: str) -> None:
    with pytest.raises((ConfigError, yaml.YAMLError)):
        safe_yaml(text, "x.yaml")


def test_oversized_yaml_is_refused_unparsed() -> None:
    with pytest.raises(ConfigError, match="characters"):
        safe_yaml("a: " + "x" * (5 * 2**20), "big.yaml")


# ---- secrets and bounded lines ------------------------------------------------------------------
SCHEMES = st.sampled_from(
    ["postgresql", "postgresql+psycopg2", "mysql+pymysql", "sqlite", "redis", "https", "journal"]
)
# a password of any printable characters (the forms a user may paste), at least 6 long and
# holding a letter so that it cannot be mistaken for a port or a common word of the message
PASSWORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=6,
    max_size=24,
).map(lambda s: "Q" + s)
HOSTS = st.sampled_from(["db", "10.0.0.1", "[::1]", "db.example.org", "h"])
PORTS = st.sampled_from(["", ":5432", ":abc", ":", ":99999999"])


def url_forms(scheme: str, password: str, host: str, port: str) -> list[str]:
    enc = quote(password, safe="")
    return [
        f"{scheme}://user:{password}@{host}{port}/db",
        f"{scheme}://user:{enc}@{host}{port}/db",
        f"{scheme}://user:{password}@{host}{port}/db?sslmode=require",
        f"{scheme}://{host}{port}/db?password={enc}",
        f"{scheme}://{host}{port}/db?user=u&password={enc}&x=1",
        f"{scheme}://{host}/db?pass%77ord={enc}",
        f"{scheme}:///tmp/x.db;PASSWORD={enc}",
        f"host={host} dbname=db user=u password={enc}",
    ]


@settings(max_examples=150, deadline=None)
@given(SCHEMES, PASSWORDS, HOSTS, PORTS, st.sampled_from(["{u}", "{u!r}", "storage={u!r} cannot be opened"]))
def test_no_password_in_any_url_form_survives_a_message(
    scheme: str, password: str, host: str, port: str, template: str
) -> None:
    enc = quote(password, safe="")
    for url in url_forms(scheme, password, host, port):
        line = one_line(ConfigError(template.format(u=url)))
        if "password=" in url.lower() or "%77ord" in url or "PASSWORD" in url:
            assert enc not in line, (url, line)
        else:
            assert password not in line and enc not in line, (url, line)
        assert "\n" not in line and len(line) <= MAX_MESSAGE + 40


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=40))
def test_a_registered_secret_is_masked_in_any_text(secret: str) -> None:
    saved = set(errors._registered)
    try:
        register_secret(secret)
        text = f"could not open postgresql://me:{secret}@db/x and {quote(secret, safe='')} again"
        assert secret not in mask_secrets(text) and quote(secret, safe="") not in mask_secrets(text)
    finally:  # the registry is the process's: leave it as it was for the other tests
        errors._registered.clear()
        errors._registered.update(saved)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=5000))
def test_every_message_is_one_bounded_printable_line(text: str) -> None:
    line = bounded(text)
    assert len(line) <= MAX_MESSAGE + 40 and line.isprintable()


def test_no_traceback_text_in_ascii_only_output() -> None:
    line = bounded("φ = 1 ± λ")
    assert line.encode("ascii", errors="backslashreplace").decode("ascii")  # printable either way
    assert os.linesep not in line
