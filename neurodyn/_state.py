"""Variables and the trace frames that keep them in sync with compiled code.

Every neurodyn transformation (``jit``, ``grad``, ``for_loop``, ...) runs the
user's Python function inside a *frame*: a small transaction over Variables.
While a frame is active, reading ``v.value`` returns the frame's view of the
Variable (a tracer when compiling) and writing stores into the frame, never into
the Variable itself. A transformation decides what to do with the frame's
writes when the function returns (turn them into outputs of the compiled
computation, or commit them to the enclosing frame). Because nothing is written
to a Variable during tracing, an exception can never leave a tracer or a
half-updated value behind, and two threads tracing at once do not see each
other's tracers.
"""

from __future__ import annotations

import operator
import threading
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _cpu

__all__ = ["Variable", "TrainVar", "Frame", "StatefulFunction", "in_trace", "values_of", "assign",
           "unwrap_variables"]

_Tracer = jax.core.Tracer


class _Context(threading.local):
    def __init__(self) -> None:
        self.frames: list[Frame] = []


CTX = _Context()


class Frame:
    """A transaction over Variables, active while a transformation traces."""

    __slots__ = ("parent", "values", "vars", "reads", "writes", "born")

    def __init__(self, parent: "Frame | None" = None) -> None:
        self.parent = parent
        self.values: dict[int, Any] = {}  # id(var) -> the value this frame sees
        self.vars: dict[int, Variable] = {}  # keeps every touched Variable alive
        self.reads: dict[int, Variable] = {}  # pulled in from outside this frame
        self.writes: dict[int, Variable] = {}
        self.born: dict[int, Variable] = {}  # created while this frame was active

    def bind(self, var: "Variable", value: Any) -> None:
        """Make ``value`` the frame's view of ``var`` (an input of the frame)."""
        i = id(var)
        self.values[i] = value
        self.vars[i] = var

    def read(self, var: "Variable") -> Any:
        i = id(var)
        try:
            return self.values[i]
        except KeyError:
            pass
        value = self.parent.read(var) if self.parent is not None else var._value
        self.values[i] = value
        self.vars[i] = var
        self.reads[i] = var
        return value

    def write(self, var: "Variable", value: Any) -> None:
        i = id(var)
        self.values[i] = value
        self.vars[i] = var
        self.writes[i] = var

    def outside_reads(self) -> list["Variable"]:
        """Variables read from outside the frame (not bound, not written first)."""
        return list(self.reads.values())

    def written(self) -> list["Variable"]:
        """Variables written in the frame that existed before it (in write order)."""
        born = self.born
        return [v for i, v in self.writes.items() if i not in born]

    def value_of(self, var: "Variable") -> Any:
        """The frame's value of ``var`` (bound, read or written in this frame)."""
        return self.values[id(var)]

    def commit(self) -> None:
        """Apply this frame's writes to the enclosing frame (or the Variables)."""
        for i, var in self.writes.items():
            if i in self.born:
                var._value = self.values[i]
            elif self.parent is not None:
                self.parent.write(var, self.values[i])
            else:
                var._value = self.values[i]

    def __enter__(self) -> "Frame":
        CTX.frames.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        popped = CTX.frames.pop()
        assert popped is self, "neurodyn frames were exited out of order"
        for var in self.born.values():
            if isinstance(var._value, _Tracer):
                var._dead = True


def current_frame() -> "Frame | None":
    frames = CTX.frames
    return frames[-1] if frames else None


def in_trace() -> bool:
    """True while a neurodyn transformation is tracing a function.

    Example:
        >>> import neurodyn as nd
        >>> nd.in_trace()
        False
        >>> bool(nd.jit(lambda: nd.in_trace())())   # read while tracing
        True
    """
    return bool(CTX.frames)


def is_traced(x: Any) -> bool:
    return isinstance(x, _Tracer)


def values_of(vars_: Sequence["Variable"]) -> list[Any]:
    """Current values, read through the active frame when there is one.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn._state import values_of
        >>> values_of([nd.Variable(1.), nd.Variable(2.)])
        [Array(1., dtype=float32), Array(2., dtype=float32)]
    """
    if CTX.frames:
        return [v.value for v in vars_]
    return [v._value for v in vars_]


def assign(vars_: Sequence["Variable"], values: Sequence[Any]) -> None:
    """Write new values, into the active frame when there is one.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> from neurodyn._state import assign
        >>> v = nd.Variable(0.)
        >>> assign([v], [jnp.float32(3.)]); float(v)
        3.0
    """
    if CTX.frames:
        for v, x in zip(vars_, values):
            v.value = x
    else:
        for v, x in zip(vars_, values):
            v._value = x


def unwrap_variables(tree: Any) -> Any:
    """Replace Variables in a pytree (a function's output) by their values.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn._state import unwrap_variables
        >>> unwrap_variables({'v': nd.Variable(1.), 'x': 2})
        {'v': Array(1., dtype=float32), 'x': 2}
    """
    return jax.tree.map(lambda x: x.value if isinstance(x, Variable) else x, tree,
                        is_leaf=lambda x: isinstance(x, Variable))


class StatefulFunction:
    """A Python function that uses Variables, run as a function of their values.

    Every neurodyn transformation is built on this one step: bind some
    Variables to given values (tracers, when tracing), run the function in a
    fresh :class:`Frame`, and hand back its output (Variables in it replaced by
    their values) together with the frame, which knows what the function read
    from outside, what it wrote and the new values. Nothing is written to any
    Variable: the caller decides what to do with the frame (return the values
    from compiled code, commit them to the enclosing frame, ...).

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> from neurodyn._state import StatefulFunction
        >>> v = nd.Variable(1.)
        >>> def f(x):
        ...     v.value += x
        ...     return v.value * 2
        >>> out, frame = StatefulFunction(f).run([v], [jnp.float32(10.)], (1.,))
        >>> out, frame.value_of(v), float(v)      # v itself is unchanged
        (Array(22., dtype=float32), Array(11., dtype=float32), 1.0)
        >>> reads, writes = StatefulFunction(f).discover(1.)
        >>> writes == [v]
        True
    """

    __slots__ = ("fun", "name")

    def __init__(self, fun: Callable, name: str | None = None) -> None:
        self.fun = fun
        self.name = name or getattr(fun, "__qualname__", None) or type(fun).__name__

    def run(self, bound: Sequence["Variable"] = (), values: Sequence[Any] = (), args: tuple = (),
            kwargs: dict | None = None) -> tuple[Any, Frame]:
        """``fun(*args, **kwargs)`` with ``bound`` Variables seeing ``values``; returns ``(output, frame)``."""
        frame = Frame(current_frame())
        for v, x in zip(bound, values):
            frame.bind(v, x)
        with frame:
            out = unwrap_variables(self.fun(*args, **(kwargs or {})))
        return out, frame

    def discover(self, *args: Any, **kwargs: Any) -> tuple[list["Variable"], list["Variable"]]:
        """``(reads, writes)``: the Variables a call with these arguments (arrays or
        ``jax.ShapeDtypeStruct``) reads but does not write, and writes. Traces
        abstractly; no Variable changes."""
        box: list[Frame] = []

        def probe(*a: Any) -> Any:
            out, frame = self.run((), (), a, kwargs)
            box.append(frame)
            return out

        jax.eval_shape(probe, *args)
        frame = box[0]
        writes = frame.written()
        write_ids = {id(v) for v in writes}
        return [v for v in frame.outside_reads() if id(v) not in write_ids], writes

    def run_bound(self, writes: Sequence["Variable"], values: Sequence[Any], args: tuple = (),
                  kwargs: dict | None = None) -> tuple[Any, list[Any]]:
        """Run with ``writes`` bound to ``values``; return the output and their new values.

        The function may write only those Variables (and ones it creates): the
        structure of a compiled loop or branch cannot grow while it is traced.
        """
        out, frame = self.run(writes, values, args, kwargs)
        known = {id(v) for v in writes}
        extra = [v for v in frame.written() if id(v) not in known]
        if extra:
            raise RuntimeError(
                f"{self.name}: the function wrote {[v.label for v in extra]} on this trace but not "
                "when neurodyn first traced it; make the set of Variables it writes independent "
                "of traced values."
            )
        return out, [frame.values[id(v)] for v in writes]


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None:
        return f"{type(x).__name__} {x!r}"
    return f"shape {tuple(shape)} dtype {dtype}"


_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _weak(x: Any) -> bool:
    return bool(getattr(getattr(x, "aval", x), "weak_type", False))


def _unwrap(x: Any) -> Any:
    return x.value if isinstance(x, Variable) else x


def _as_strong_array(value: Any, dtype: Any = None) -> jax.Array:
    if isinstance(value, Variable):
        value = value.value
    if dtype is None and not hasattr(value, "dtype"):
        value = jnp.asarray(value)
        dtype = value.dtype  # canonical dtype, but drop the weak type
    arr = jnp.asarray(value, dtype=dtype)
    if _weak(arr):
        arr = jax.lax.convert_element_type(arr, arr.dtype)
    return arr


class Variable:
    """A mutable holder of one JAX array that compiled code keeps in sync.

    Update it in place (``v[...] = x``, ``v += 1``, ``v.value = x``,
    ``v.update(x)``); ``nd.jit`` and the other transformations find every
    Variable a function touches and carry its value in and out of the compiled
    computation. Scalars are fine: ``nd.Variable(1.)`` holds a 0-d array.

    Assignments keep the shape and dtype fixed (a Python scalar is cast to the
    Variable's dtype); :meth:`reset_value` replaces the value with one of any
    shape, outside compiled code.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> v = nd.Variable(jnp.zeros(3))
        >>> v[1] = 2.
        >>> v += 1
        >>> v.value
        Array([1., 3., 1.], dtype=float32)
    """

    __slots__ = ("_value", "_name", "_dead", "_copy", "__weakref__", "__dict__")

    def __init__(self, value: Any, dtype: Any = None, *, name: str | None = None) -> None:
        if _cpu.pending is not None:  # the first object: size XLA:CPU's pool before JAX starts
            _cpu.apply_pending()
        value = _as_strong_array(value, dtype)
        self._value = value
        self._name = name
        self._dead = False
        self._copy = False
        frames = CTX.frames
        if frames:
            frame = frames[-1]
            frame.born[id(self)] = self
            frame.bind(self, value)

    # -- value -------------------------------------------------------------
    @property
    def value(self) -> jax.Array:
        """The current value (inside compiled code: its traced value)."""
        frames = CTX.frames
        if frames and not self._copy:
            if self._dead:
                raise _dead_error(self)
            return frames[-1].read(self)
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        new = self._coerce(new)
        frames = CTX.frames
        if frames:
            frames[-1].write(self, new)
            return
        if self._copy:
            raise RuntimeError(
                f"{self.label} is a copy that jax made while flattening a pytree "
                "argument; writes to it are lost. Pass the Variable as a top-level "
                "argument of nd.jit, or close over it, instead of inside a container."
            )
        if isinstance(new, _Tracer) and not isinstance(self._value, _Tracer):
            raise RuntimeError(
                f"{self.label} was assigned a traced value outside neurodyn's "
                "transformations (inside a raw jax.jit/vmap/grad?). The tracer would "
                "leak out of the trace. Use nd.jit / nd.grad, or nd.graph.split and "
                "nd.graph.merge to thread the state through raw JAX explicitly."
            )
        self._value = new

    def update(self, value: Any) -> None:
        """Set the value in place (same as ``v.value = value``)."""
        self.value = value

    def reset_value(self, value: Any, dtype: Any = None) -> None:
        """Replace the value with one of any shape or dtype (outside compiled code).

        Compiled functions that use the Variable re-trace on their next call.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> v = nd.Variable(jnp.zeros(3))
            >>> v.reset_value(jnp.zeros((2, 5)))
        """
        if CTX.frames:
            raise RuntimeError(
                f"{self.label}.reset_value() changes shape or dtype and is not "
                "allowed inside compiled code; call it before the compiled call."
            )
        self._value = _as_strong_array(value, dtype)

    def _coerce(self, new: Any) -> Any:
        if isinstance(new, Variable):
            new = new.value
        old = self._value
        if not hasattr(new, "dtype") or isinstance(new, (np.ndarray, np.generic)):
            try:
                new = jnp.asarray(new)
            except TypeError as e:
                raise TypeError(
                    f"{self.label} expects an array of shape {tuple(old.shape)} "
                    f"dtype {old.dtype}, got {type(new).__name__}: {e}"
                ) from None
            weak = True  # Python and NumPy data carry no dtype commitment here
        else:
            weak = _weak(new)
        if new.shape != old.shape:
            raise ValueError(
                f"{self.label} expects shape {tuple(old.shape)} dtype {old.dtype}, "
                f"got {_describe(new)}. Assign a value of the same shape (v[...] = x "
                "broadcasts), or call v.reset_value(x) outside compiled code to change it."
            )
        if new.dtype != old.dtype:
            kind_new, kind_old = np.dtype(new.dtype).kind, np.dtype(old.dtype).kind
            if weak and _KIND_ORDER.get(kind_new, 9) <= _KIND_ORDER.get(kind_old, -1):
                new = jax.lax.convert_element_type(new, old.dtype)
            else:
                raise TypeError(
                    f"{self.label} expects dtype {old.dtype} (shape "
                    f"{tuple(old.shape)}), got {_describe(new)}. Cast explicitly with "
                    f".astype({old.dtype}) or call v.reset_value(x) to change the dtype."
                )
        elif _weak(new):
            new = jax.lax.convert_element_type(new, old.dtype)
        return new

    @property
    def committed_value(self) -> Any:
        """The value held outside compiled code, even while a trace is running.

        Reading it never returns a tracer of the current trace; assigning it
        replaces the stored array as is (no shape, dtype or trace checks). It is
        meant for code that saves values and puts them back (a rollback after an
        interrupted run, placing arrays on devices); use ``value`` everywhere else.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> v = nd.Variable(jnp.zeros(2))
            >>> saved = v.committed_value
            >>> v.value = jnp.ones(2)
            >>> v.committed_value = saved
            >>> v.value
            Array([0., 0.], dtype=float32)
        """
        return self._value

    @committed_value.setter
    def committed_value(self, value: Any) -> None:
        self._value = value

    @classmethod
    def from_raw(cls, value: Any, *, name: str | None = None) -> "Variable":
        """A Variable holding ``value`` exactly as given (no cast, not tied to any trace).

        For building Variables from arrays that are already in the right form,
        e.g. a copy of a model's structure with new values inside ``jax.jit``.

        Example:
            >>> import neurodyn as nd
            >>> import jax.numpy as jnp
            >>> v = nd.TrainVar.from_raw(jnp.zeros(3), name='w')
            >>> v
            TrainVar([0., 0., 0.], dtype=float32, name='w')
        """
        new = object.__new__(cls)
        new._value, new._name, new._dead, new._copy = value, name, False, False
        return new

    # -- metadata ------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """A readable name (``Class.attribute``) given when set on a Module."""
        return self._name

    @name.setter
    def name(self, name: str | None) -> None:
        self._name = name

    @property
    def label(self) -> str:
        """The kind and name, for messages: ``"TrainVar 'Linear.weight'"``."""
        kind = type(self).__name__
        return f"{kind} '{self._name}'" if self._name else kind

    def _label(self) -> str:
        return self.label

    @property
    def is_dead(self) -> bool:
        """True for a Variable created inside a compiled call that has finished."""
        return self._dead

    @property
    def shape(self) -> tuple[int, ...]:
        """The value's shape."""
        return tuple(self._value.shape)

    @property
    def dtype(self) -> Any:
        """The value's dtype."""
        return self._value.dtype

    @property
    def ndim(self) -> int:
        """The value's number of dimensions."""
        return self._value.ndim

    @property
    def size(self) -> int:
        """The value's number of elements."""
        return self._value.size

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __repr__(self) -> str:
        v = self._value
        if isinstance(v, _Tracer):
            body = f"traced {v.aval}"
        else:
            body = np.array2string(np.asarray(v), separator=", ", threshold=20)
        name = f", name={self._name!r}" if self._name else ""
        return f"{type(self).__name__}({body}, dtype={v.dtype}{name})"

    # -- array protocols -------------------------------------------------------
    def __jax_array__(self) -> jax.Array:
        return self.value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.value, dtype=dtype)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __complex__(self) -> complex:
        return complex(self.value)

    def __index__(self) -> int:
        return operator.index(self.value)

    def __format__(self, spec: str) -> str:
        v = self.value
        return format(v.item() if v.ndim == 0 else v, spec)

    __hash__ = object.__hash__  # identity: Variables are objects, not values

    def __getitem__(self, index: Any) -> jax.Array:
        return self.value[_unwrap_index(index)]

    def __setitem__(self, index: Any, x: Any) -> None:
        self.value = self.value.at[_unwrap_index(index)].set(_unwrap(x))

    def __getattr__(self, name: str) -> Any:
        # Array methods and attributes (v.sum(), v.T, v.reshape(...)) act on the value.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return getattr(self.value, name)
        except AttributeError:
            raise AttributeError(
                f"'{type(self).__name__}' object (and its array value) has no attribute '{name}'"
            ) from None

    def __copy__(self) -> "Variable":
        new = object.__new__(type(self))
        new._value, new._name, new._dead, new._copy = self._value, self._name, False, False
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict) -> "Variable":
        import copy

        new = object.__new__(type(self))
        memo[id(self)] = new
        new._value, new._name, new._dead, new._copy = self._value, self._name, False, False
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __getstate__(self) -> dict:
        return {"value": np.asarray(self._value), "name": self._name, "dict": dict(self.__dict__)}

    def __setstate__(self, state: dict) -> None:
        self._value = jnp.asarray(state["value"])
        self._name = state["name"]
        self._dead = False
        self._copy = False
        self.__dict__.update(state["dict"])


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    if isinstance(index, list):  # NumPy-style v[[1, 3]]
        return jnp.asarray(index)
    return _unwrap(index)


def _dead_error(var: Variable) -> RuntimeError:
    return RuntimeError(
        f"{var.label} was created inside a compiled call that has finished; it holds "
        "a value that no longer exists. Create Variables in __init__ or reset_state(), "
        "outside compiled code."
    )


def _binary(op: Any, reflected: bool = False) -> Any:
    if reflected:
        def method(self: Variable, other: Any) -> Any:
            return op(_unwrap(other), self.value)
    else:
        def method(self: Variable, other: Any) -> Any:
            return op(self.value, _unwrap(other))
    return method


def _inplace(op: Any) -> Any:
    def method(self: Variable, other: Any) -> Variable:
        self.value = op(self.value, _unwrap(other))
        return self
    return method


def _unary(op: Any) -> Any:
    def method(self: Variable) -> Any:
        return op(self.value)
    return method


_BINARY_OPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "pow": operator.pow, "matmul": operator.matmul, "and": operator.and_,
    "or": operator.or_, "xor": operator.xor, "lshift": operator.lshift,
    "rshift": operator.rshift,
}
for _name, _op in _BINARY_OPS.items():
    setattr(Variable, f"__{_name}__", _binary(_op))
    setattr(Variable, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(Variable, f"__i{_name}__", _inplace(_op))
for _name, _op in {"lt": operator.lt, "le": operator.le, "gt": operator.gt,
                   "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}.items():
    setattr(Variable, f"__{_name}__", _binary(_op))
Variable.__divmod__ = _binary(divmod)
Variable.__rdivmod__ = _binary(divmod, reflected=True)
for _name, _op in {"neg": operator.neg, "pos": operator.pos, "abs": abs,
                   "invert": operator.invert}.items():
    setattr(Variable, f"__{_name}__", _unary(_op))


class TrainVar(Variable):
    """A trainable parameter: a Variable that ``Module.train_vars()`` collects.

    Example:
        >>> import neurodyn as nd
        >>> import jax.numpy as jnp
        >>> w = nd.TrainVar(jnp.ones((3, 2)))
    """

    __slots__ = ()


# Variables are one-leaf pytrees so that jax.numpy functions accept them
# (``jnp.exp(v)``); flattening goes through ``.value`` and so sees traced values.
def _flatten(v: Variable) -> tuple[tuple[Any], type]:
    return (v.value,), type(v)


def _unflatten(cls: type, leaves: Any) -> Variable:
    new = object.__new__(cls)
    new._value, new._name, new._dead, new._copy = leaves[0], None, False, True
    return new


for _cls in (Variable, TrainVar):
    jax.tree_util.register_pytree_node(_cls, _flatten, _unflatten)


def register_variable_type(cls: type) -> None:
    """Register a Variable subclass as a pytree (done automatically on subclassing)."""
    jax.tree_util.register_pytree_node(cls, _flatten, _unflatten)


def _init_subclass(cls: type, **kwargs: Any) -> None:
    register_variable_type(cls)


Variable.__init_subclass__ = classmethod(_init_subclass)  # type: ignore[assignment]
