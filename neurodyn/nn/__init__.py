"""Layers, neuron groups, synapses and projections (all are ``nd.Module`` s)."""

# -- layers, recurrent cells, normalisation --
from ._layers import (Activation, Dropout, Flatten, GELU, Linear, LogSoftmax, ReLU, Sequential,
                      Sigmoid, Softmax, Tanh, init_param)
from ._norm import BatchNorm1d, LayerNorm
from ._recurrent import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell

# -- spiking dynamics: neurons, synapses, connectivity, projections --
from ._connectivity import (AllToAll, Connector, FixedPostNum, FixedPreNum, FixedProb, FixedTotalNum,
                            OneToOne, sample_without_replacement)
from ._inputs import (ConstantInput, PoissonGroup, PoissonInput, TimedInput, binomial_table, constant_input,
                      ramp_input, section_input)
from ._neurons import (ALIF, HH, LIF, AdEx, Constant, Group, Izhikevich, NeuronGroup, Normal, Uniform,
                       init_value)
from ._distributions import TruncatedNormal
from ._custom import NeuronModel
from ._spikegen import SpikeGeneratorGroup
from ._drive import Conductance, Drive, Jump
from ._projection import Network, Projection, delay_steps
from ._synapses import COBA, CUBA, Alpha, Delta, DualExpon, Expon, Synapse, SynOut, VoltageJump

# -- training spiking networks --
from ._readout import LeakyReadout, max_over_time, mean_over_time, rate_regularizer, spike_count

# -- discrete-time spiking layers in the ML idiom (snnTorch / spyx conventions) --
from ._spiking import Delay, Leaky, LeakyIntegrator, RLeaky, RSynaptic, Synaptic

# -- plasticity on the event-driven path --
from ._plasticity import (Plasticity, RewardSTDP, STDP, Trace, TripletSTDP, TsodyksMarkram, VogelsSTDP,
                          weight_histogram, weight_mean)
