"""NIR (Neuromorphic Intermediate Representation) export and import.

Needs the optional ``nir`` package (``pip install 'neurodyn[nir]'``).
:func:`export` turns a model of discrete spiking layers into a
``nir.NIRGraph``; :func:`load` runs a NIR graph as a neurodyn module, one
step of ``dt`` per call. Continuous NIR nodes map to discrete layers by
forward Euler: ``beta = 1 - dt / tau``.

Example:
    >>> import neurodyn as nd
    >>> from neurodyn import nn
    >>> graph = nd.nir.export(nn.Sequential(nn.Linear(4, 8), nn.Leaky(8, beta=0.9)), dt=1.0)
    >>> again = nd.nir.load(graph)
"""

from ._nir import NIRModule, export, load

__all__ = ["export", "load", "NIRModule"]
