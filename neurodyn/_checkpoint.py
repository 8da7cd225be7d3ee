"""Checkpoints: Variables of modules (and the random state) in one ``.npz`` file.

Writes are atomic: the data goes to a temporary file in the same directory,
which then replaces the target with ``os.replace``, so an interrupted save
leaves the previous checkpoint intact. Loading checks every name, shape and
dtype before changing anything.
"""

from __future__ import annotations

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


def save(path: str | os.PathLike, target: Module | Mapping[str, Module], *, rng: bool = True,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Save every Variable of ``target`` (a Module or ``{name: Module}``) to an ``.npz`` file.

    ``rng`` also stores ``nd.random.DEFAULT``; ``metadata`` holds extra arrays
    or numbers (epoch, step, ...) that :func:`load` returns.

    Example:
        >>> nd.save("ckpt.npz", {"model": model, "optimizer": opt}, metadata={"epoch": 3})
    """
    if in_trace():
        raise RuntimeError("nd.save cannot run inside compiled code")
    arrays = {k: np.asarray(v.value) for k, v in _variables(target, rng).items()}
    for k, x in (metadata or {}).items():
        arrays[_META + k] = np.asarray(x)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
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


def load(path: str | os.PathLike, target: Module | Mapping[str, Module], *, rng: bool = True,
         strict: bool = True) -> dict[str, np.ndarray]:
    """Load a file written by :func:`save` into ``target``; returns its metadata.

    Names, shapes and dtypes are checked for every Variable before any is
    changed. With ``strict`` the file must hold exactly the target's Variables.

    Example:
        >>> meta = nd.load("ckpt.npz", {"model": model, "optimizer": opt})
        >>> int(meta["epoch"])
        3
    """
    if in_trace():
        raise RuntimeError("nd.load cannot run inside compiled code")
    with np.load(os.fspath(path), allow_pickle=False) as data:
        stored = {k: data[k] for k in data.files}
    meta = {k[len(_META):]: v for k, v in stored.items() if k.startswith(_META)}
    stored = {k: v for k, v in stored.items() if not k.startswith(_META)}
    own = _variables(target, rng)
    if not rng:
        stored.pop(_RNG_KEY, None)
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
