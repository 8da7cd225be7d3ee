"""Published network models with their papers' parameters as defaults.

Each model is an :class:`nn.Network` subclass whose populations are named as
in its paper, with a ``scale`` argument and a citation in its docstring.
``net.spike_monitor()`` records all spikes compactly during a Runner run and
``net.spike_trains(runner)`` turns them into a :class:`neurodyn.analysis.SpikeTrains`
for the statistics in :mod:`neurodyn.analysis`.

Example:
    >>> from neurodyn import models
    >>> net = models.PotjansDiesmann2014(scale=0.01)
    >>> net.population_sizes()['L4E']
    219
"""

from ._brunel import Brunel2000
from ._microcircuit import PotjansDiesmann2014
from ._vogels_abbott import VogelsAbbott2005

__all__ = ["Brunel2000", "PotjansDiesmann2014", "VogelsAbbott2005"]
