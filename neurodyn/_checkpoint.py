"""Checkpoints: Variables of modules (and the random state) in one ``.npz`` file.

Writes are atomic: the data goes to a temporary file in the same directory,
which then replaces the target with ``os.replace``, so an interrupted save
leaves the previous checkpoint intact. Loading checks every name, shape and
dtype before changing anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping

import numpy as np

from . import random as _random
from ._module import Module
from ._state import Variable, in_trace

__all__ = ["save", "load"]

_RNG_KEY = "__rng__"
_META = "__meta__/"
_JSON = "__json__/"


def _targets(target: Module | Mapping[str, Module]) -> dict[str, Module]:
    if isinstance(target, Module):
        return {"module": target}
    if isinstance(target, Mapping):
        for k, m in target.items():
            if not isinstance(m, Module):
                raise TypeError(f"nd.save/nd.load: '{k}' must be a Module, got {type(m).__name__}")
            if "/" in k:
                raise ValueError(f"nd.save/nd.load: names must not contain '/', got '{k}'")
        return dict(target)
    raise TypeError(f"nd.save/nd.load expect a Module or a dict of Modules, got {type(target).__name__}")


def _variables(target: Module | Mapping[str, Module], rng: bool) -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for prefix, module in _targets(target).items():
        for path, var in module.vars().items():
            out[f"{prefix}/{path}"] = var
    if rng:
        out[_RNG_KEY] = _random.DEFAULT
    return out


def _meta_arrays(metadata: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Numeric arrays stay arrays; any other value is stored as JSON (or refused here)."""
    out: dict[str, np.ndarray] = {}
    for k, x in (metadata or {}).items():
        if not isinstance(k, str):
            raise TypeError(f"nd.save: metadata keys must be strings, got {k!r}")
        arr = None
        if not isinstance(x, (dict, list, tuple, type(None))):
            try:
                arr = np.asarray(x)
            except Exception:  # noqa: BLE001 - anything NumPy cannot hold goes to JSON below
                arr = None
            if arr is not None and arr.dtype.kind not in "biufcUS":
                arr = None
        if arr is not None:
            out[_META + k] = arr
            continue
        try:
            text = json.dumps(x, allow_nan=True)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"nd.save: metadata['{k}'] is a {type(x).__name__}, which is neither a numeric/string "
                f"array nor JSON-serialisable ({e}); nothing was written") from None
        out[_JSON + k] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(directory: str, base: str) -> None:
    """Remove temporary files of saves to ``base`` whose process died mid-write."""
    prefix = f".tmp-{base}-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass


def variables(target: Module | Mapping[str, Module], rng: bool) -> dict[str, Variable]:
    """The checkpoint entries of ``target``: ``'name/variable.path' -> Variable``."""
    return _variables(target, rng)


def write_file(path: str | os.PathLike, variables: Mapping[str, Variable],
               metadata: Mapping[str, Any] | None) -> None:
    """Atomically write these Variables and metadata to ``path``."""
    if in_trace():
        raise RuntimeError("nd.save cannot run inside compiled code")
    meta = _meta_arrays(metadata)
    arrays = {k: np.asarray(v.value) for k, v in variables.items()}
    arrays.update(meta)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    _clean_stale(directory, base)
    # The pid in the name lets a later save remove what a killed process left behind.
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{base}-{os.getpid()}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(path: str | os.PathLike, target: Module | Mapping[str, Module], *, rng: bool = True,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Save every Variable of ``target`` (a Module or ``{name: Module}``) to an ``.npz`` file.

    ``rng`` also stores ``nd.random.DEFAULT``. ``metadata`` holds extra values
    that :func:`load` returns: numbers and numeric or string arrays come back as
    NumPy arrays, other JSON-serialisable values (dicts, lists, None) as the
    same Python objects; anything else is refused before a file is written.
    A save killed mid-write leaves the previous file intact; its temporary file
    is removed by the next save to the same path.

    Example:
        >>> import os, tempfile
        >>> import neurodyn as nd
        >>> from neurodyn import nn, optim
        >>> model = nn.Linear(3, 2)
        >>> opt = optim.Adam(1e-3, train_vars=model.train_vars())
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
        >>> nd.save(path, {"model": model, "optimizer": opt},
        ...         metadata={"epoch": 3, "cfg": {"lr": 1e-3, "note": None}})
        >>> nd.load(path, {"model": model, "optimizer": opt})["cfg"]
        {'lr': 0.001, 'note': None}
    """
    if in_trace():
        raise RuntimeError("nd.save cannot run inside compiled code")
    write_file(path, _variables(target, rng), metadata)


def read_file(path: str | os.PathLike, own: Mapping[str, Variable], strict: bool = True,
              ignore: Any = ()) -> dict[str, Any]:
    """Check and load the entries ``own`` from ``path``; entries named in ``ignore`` may be present."""
    if in_trace():
        raise RuntimeError("nd.load cannot run inside compiled code")
    with np.load(os.fspath(path), allow_pickle=False) as data:
        stored = {k: data[k] for k in data.files}
    meta: dict[str, Any] = {k[len(_META):]: v for k, v in stored.items() if k.startswith(_META)}
    for k, v in stored.items():
        if k.startswith(_JSON):
            meta[k[len(_JSON):]] = json.loads(v.tobytes().decode("utf-8"))
    stored = {k: v for k, v in stored.items()
              if not k.startswith((_META, _JSON)) and (k in own or k not in ignore)}
    missing = [k for k in own if k not in stored]
    unexpected = [k for k in stored if k not in own]
    if missing or (strict and unexpected):
        raise KeyError(f"nd.load('{path}'): the checkpoint lacks {missing} and has unexpected entries "
                       f"{unexpected if strict else []}. Entries are 'name/variable.path'.")
    problems = []
    for k, var in own.items():
        x = stored[k]
        if tuple(x.shape) != var.shape:
            problems.append(f"'{k}': checkpoint shape {tuple(x.shape)} dtype {x.dtype}, "
                            f"expected shape {var.shape} dtype {var.dtype}")
        elif np.dtype(x.dtype) != np.dtype(var.dtype):
            problems.append(f"'{k}': checkpoint dtype {x.dtype}, expected {var.dtype} (shape {var.shape})")
    if problems:
        raise ValueError(f"nd.load('{path}'): " + "; ".join(problems))
    for k, var in own.items():
        var.value = stored[k]
    return meta


def load(path: str | os.PathLike, target: Module | Mapping[str, Module], *, rng: bool = True,
         strict: bool = True) -> dict[str, Any]:
    """Load a file written by :func:`save` into ``target``; returns its metadata.

    Names, shapes and dtypes are checked for every Variable before any is
    changed. With ``strict`` the file must hold exactly the target's Variables.

    Example:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> import neurodyn as nd
        >>> from neurodyn import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "lin.npz")
        >>> a = nn.Linear(3, 2)
        >>> nd.save(path, a, metadata={"epoch": 3})
        >>> b = nn.Linear(3, 2)
        >>> meta = nd.load(path, b)
        >>> int(meta["epoch"]), bool(jnp.all(a.weight.value == b.weight.value))
        (3, True)
    """
    if in_trace():
        raise RuntimeError("nd.load cannot run inside compiled code")
    return read_file(path, _variables(target, rng), strict, ignore=() if rng else (_RNG_KEY,))
