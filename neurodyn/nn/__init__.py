"""Layers, neuron groups, synapses, connectivity, projections and plasticity (all are ``nd.Module`` s).

Where things live:

* ``_init``: initializers (``jax.nn.initializers`` convention) and :func:`init_value`;
* ``_layers``, ``_norm``, ``_recurrent``: feed-forward, normalisation and recurrent layers;
* ``_neurons`` (+ ``_custom``, ``_spiking``): neuron groups; ``_drive``: what inputs return;
* ``_synapses``: synapse models and outputs; ``_connectivity``: connectors;
* ``_inputs``, ``_spikegen``: currents, Poisson sources and spike generators;
* ``_projection``: :class:`Projection`; ``_network``: :class:`Network` (update order, fusion);
* ``_kernels``: the propagation kernels both use (compaction, fused table, delayed delivery);
* ``_plasticity``: plasticity rules; ``_readout``: readouts and spike losses for training.
"""

from ._init import Constant, Normal, TruncatedNormal, Uniform, init_param, init_value
from ._layers import (GELU, Activation, Dropout, Flatten, Linear, LogSoftmax, ReLU, Sequential, Sigmoid,
                      Softmax, Tanh)
from ._norm import BatchNorm1d, LayerNorm
from ._recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

from ._neurons import ALIF, HH, LIF, AdEx, Group, Izhikevich, NeuronGroup
from ._custom import NeuronModel
from ._drive import Conductance, Drive, Jump
from ._synapses import COBA, CUBA, Alpha, Delta, DualExpon, Expon, Synapse, SynOut, VoltageJump
from ._connectivity import (AllToAll, Connector, FixedPostNum, FixedPreNum, FixedProb, FixedTotalNum,
                            OneToOne, sample_without_replacement)
from ._inputs import (ConstantInput, PoissonGroup, PoissonInput, TimedInput, binomial_table, constant_input,
                      draw_counts, poisson_table, ramp_input, section_input, stack_tables)
from ._spikegen import SpikeGeneratorGroup
from ._projection import Projection, delay_steps
from ._network import Network

from ._readout import LeakyReadout, max_over_time, mean_over_time, rate_regularizer, spike_count
from ._spiking import Delay, Leaky, LeakyIntegrator, RLeaky, RSynaptic, Synaptic

from ._plasticity import (STDP, Plasticity, RewardSTDP, Trace, TripletSTDP, TsodyksMarkram, VogelsSTDP,
                          weight_histogram, weight_mean)

__all__ = [
    # initializers
    "Constant", "Normal", "Uniform", "TruncatedNormal", "init_value", "init_param",
    # layers
    "Linear", "Sequential", "Dropout", "Flatten", "Activation", "ReLU", "Tanh", "Sigmoid", "GELU",
    "Softmax", "LogSoftmax", "BatchNorm1d", "LayerNorm", "RNN", "RNNCell", "GRU", "GRUCell", "LSTM",
    "LSTMCell",
    # neurons and what inputs return
    "Group", "NeuronGroup", "LIF", "ALIF", "Izhikevich", "HH", "AdEx", "NeuronModel",
    "Conductance", "Drive", "Jump",
    # synapses
    "Synapse", "Expon", "Alpha", "DualExpon", "Delta", "SynOut", "CUBA", "COBA", "VoltageJump",
    # connectivity
    "Connector", "FixedProb", "FixedPostNum", "FixedPreNum", "FixedTotalNum", "AllToAll", "OneToOne",
    "sample_without_replacement",
    # inputs and sources
    "ConstantInput", "TimedInput", "PoissonGroup", "PoissonInput", "SpikeGeneratorGroup",
    "section_input", "constant_input", "ramp_input", "binomial_table", "poisson_table", "stack_tables",
    "draw_counts",
    # projections and networks
    "Projection", "Network", "delay_steps",
    # training spiking networks
    "LeakyReadout", "spike_count", "mean_over_time", "max_over_time", "rate_regularizer",
    "Leaky", "Synaptic", "RLeaky", "RSynaptic", "LeakyIntegrator", "Delay",
    # plasticity
    "Plasticity", "STDP", "TripletSTDP", "VogelsSTDP", "RewardSTDP", "TsodyksMarkram", "Trace",
    "weight_histogram", "weight_mean",
]
