"""Layers, neuron groups, synapses and projections (all are ``nd.Module`` s)."""

# -- layers, recurrent cells, normalisation (issue 3) --

# -- spiking dynamics: neurons, synapses, connectivity, projections (issue 4) --
