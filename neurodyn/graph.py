"""Graph utilities: split a Module into structure and pure state pytrees, and back.

Example:
    >>> import neurodyn as nd
    >>> model = nd.nn.Linear(3, 2)
    >>> graphdef, params, rest = nd.graph.split(model, nd.TrainVar, ...)
    >>> model2 = nd.graph.merge(graphdef, params, rest)
"""

from ._graph import GraphDef, merge, split, states, update

__all__ = ["GraphDef", "split", "merge", "states", "update"]
