"""Surrogate-gradient spike functions for training spiking networks.

Each object is a Heaviside step ``x >= 0`` in the forward pass with a smooth
derivative in the backward pass; pass one as ``spike_fn=`` to a neuron group.

Example:
    >>> import neurodyn as nd
    >>> from neurodyn import surrogate
    >>> lif = nd.nn.LIF(10, spike_fn=surrogate.ArcTan(alpha=2.))
    >>> lif.spike_fn
    ArcTan(alpha=2.0)
"""

from ._surrogate import ArcTan, FastSigmoid, Gaussian, PiecewiseQuadratic, Sigmoid, Surrogate

__all__ = ["Surrogate", "Sigmoid", "ArcTan", "FastSigmoid", "PiecewiseQuadratic", "Gaussian"]
