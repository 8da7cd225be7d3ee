"""Layers, neuron groups, synapses and projections (all are ``nd.Module`` s)."""

# -- layers, recurrent cells, normalisation (issue 3) --
from ._layers import (Activation, Dropout, Flatten, GELU, Linear, LogSoftmax, ReLU, Sequential,
                      Sigmoid, Softmax, Tanh, init_param)
from ._norm import BatchNorm1d, LayerNorm
from ._recurrent import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell

# -- spiking dynamics: neurons, synapses, connectivity, projections (issue 4) --
