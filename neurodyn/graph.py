"""Graph utilities: split a Module into structure and pure state pytrees, and back.

Example:
    >>> graphdef, params, rest = nd.graph.split(model, nd.TrainVar, ...)
    >>> model2 = nd.graph.merge(graphdef, params, rest)
"""

from ._graph import GraphDef, merge, split, states, update

__all__ = ["GraphDef", "split", "merge", "states", "update"]
