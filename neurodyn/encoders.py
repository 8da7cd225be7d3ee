"""Spike encoders and event-stream binning for training spiking networks.

Encoders turn features into time-major spike trains ``(num_steps, *x.shape)``;
:func:`bin_events` turns tonic-style event arrays (fields ``x``, ``y``, ``t``,
``p``) into spike tensors, and :func:`pad_sequences` batches streams of
different lengths.

Example:
    >>> import jax.numpy as jnp
    >>> from neurodyn import encoders
    >>> encoders.rate(jnp.array([0.1, 0.9]), num_steps=100).shape
    (100, 2)
"""

from ._encoders import EVENT_DTYPE, bin_events, delta, latency, pad_sequences, poisson, rate

__all__ = ["rate", "poisson", "latency", "delta", "bin_events", "pad_sequences", "EVENT_DTYPE"]
