"""Vogels & Abbott (2005) networks as Brette et al. (2007) benchmarks 1 (COBA) and 2 (CUBA)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._environ import get as _get_shared
from .._environ import get_dt
from .. import nn
from ._common import PopulationsMixin

__all__ = ["VogelsAbbott2005", "KickGroup"]


class KickGroup(nn.PoissonGroup):
    """Poisson spike trains at ``freq`` Hz during the first ``duration`` ms of a run, silent afterwards.

    Example:
        >>> from neurodyn.models._vogels_abbott import KickGroup
        >>> kick = KickGroup(100, freq=200., duration=50.)
    """

    def __init__(self, size: int, freq: float, duration: float) -> None:
        super().__init__(size, freq)
        self.n_steps = int(round(float(duration) / get_dt()))

    def update(self) -> jax.Array:
        spikes = super().update()
        self.spike.value = spikes & (jnp.asarray(_get_shared("i")) < self.n_steps)
        return self.spike.value


class VogelsAbbott2005(PopulationsMixin, nn.Network):
    """The random E/I network of Vogels & Abbott (2005) as benchmarks 1 and 2 of Brette et al. (2007).

    ``E`` (3200 * scale) and ``I`` (800 * scale) LIF neurons (``tau_m = 20`` ms, ``V_th = -50`` mV,
    ``V_reset = -60`` mV, ``t_ref = 5`` ms), connected at random with probability ``0.02 / scale``
    (so ~80 synapses per neuron at every scale), exponential synapses ``tau_E = 5`` ms,
    ``tau_I = 10`` ms:

    * ``synapse='coba'`` (benchmark 1): conductances in units of the leak conductance,
      ``w_E = 0.6``, ``w_I = 6.7``, reversal potentials ``E_E = 0``, ``E_I = -80`` mV;
    * ``synapse='cuba'`` (benchmark 2): currents in mV, ``w_E = 1.62``, ``w_I = -9``.

    Drive:

    * ``drive='kick'`` (the original, self-sustained network): no external input except
      ``kick_rate`` Hz of Poisson spikes of weight ``w_E`` onto every neuron's excitatory
      synapse during the first ``kick_ms = 50`` ms; recurrent activity sustains itself
      afterwards. COBA: ``V_rest = -60`` mV (E 16.9 Hz, I 19.0 Hz over 0.2-1 s, CV of ISIs 1.5);
    * ``drive='constant'``: for COBA a constant current ``R I = I_ext = 20`` mV with
      ``V_rest = -60`` mV (the common COBA benchmark setting, ~20 Hz).

    CUBA (benchmark 2) keeps its leak reversal ``E_L = V_rest = -49`` mV, above threshold,
    in both variants, as in Brette et al. (2007) (and PyNN's ``VAbenchmarks.py``, Brian's
    ``CUBA.py``): that depolarising drift is what sustains its activity, with these weights
    (``w_E = 0.27 nS x 60 mV``, ``w_I = -4.5 nS x 20 mV`` over a 10 nS leak, in mV) it falls
    silent at ``V_rest = -60`` mV after any kick. The two CUBA variants thus differ only by
    the 50 ms kick.

    Initial V is uniform between reset and threshold.

    References: T. P. Vogels and L. F. Abbott (2005), Signal propagation and logic gating in
    networks of integrate-and-fire neurons. J. Neurosci. 25(46):10786-10795. R. Brette et al.
    (2007), Simulation of networks of spiking neurons: a review of tools and strategies.
    J. Comput. Neurosci. 23:349-398.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn.models import VogelsAbbott2005
        >>> net = VogelsAbbott2005(synapse='coba', drive='kick', scale=0.05)  # or synapse='cuba'
        >>> runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False)
        >>> _ = runner.run(20.)
    """

    population_names = ("E", "I")
    #: firing rates (Hz) of the constant-drive COBA network measured across simulators
    #: (Brian2, NEST, BrainPy, neurodyn 0.1; 19.2-21.8 Hz)
    reference_rates_constant_coba = {"E": 20.0, "I": 20.0}
    #: firing rates (Hz) of the CUBA network (benchmark 2, 4000 neurons, 0.1-1 s): Brian2 2.9.0
    #: with the same equations (exact integration, two seeds) 5.6-5.7 Hz, neurodyn 5.3-6.1 Hz
    reference_rates_cuba = {"E": 5.6, "I": 5.6}

    def __init__(self, synapse: str = "coba", drive: str = "kick", scale: float = 1.0,
                 I_ext: float = 20.0, kick_rate: float = 200.0, kick_ms: float = 50.0, seed: int = 0) -> None:
        if synapse not in ("coba", "cuba"):
            raise ValueError(f"VogelsAbbott2005: synapse must be 'coba' or 'cuba', got {synapse!r}")
        if drive not in ("kick", "constant"):
            raise ValueError(f"VogelsAbbott2005: drive must be 'kick' or 'constant', got {drive!r}")
        if not 0.05 <= scale <= 10:
            raise ValueError(f"VogelsAbbott2005: scale must be in [0.05, 10], got {scale}")
        self.synapse, self.drive, self.scale = synapse, drive, float(scale)
        n_e, n_i = int(round(3200 * scale)), int(round(800 * scale))
        p = min(1.0, 0.02 / scale)
        V_rest = -49.0 if synapse == "cuba" else -60.0
        lif = dict(V_rest=V_rest, V_reset=-60.0, V_th=-50.0, tau=20.0, tau_ref=5.0,
                   V_initializer=nn.Uniform(-60.0, -50.0))
        self.E = nn.LIF(n_e, **lif)
        self.I = nn.LIF(n_i, **lif)
        if synapse == "coba":
            w_e, w_i = 0.6, 6.7
            out_e, out_i = (lambda: nn.COBA(E=0.0)), (lambda: nn.COBA(E=-80.0))
        else:
            w_e, w_i = 1.62, -9.0
            out_e = out_i = nn.CUBA
        self.w_e, self.w_i = w_e, w_i

        def proj(pre: nn.Group, post: nn.LIF, conn: nn.Connector, w: float, tau: float, out: nn.SynOut) -> nn.Projection:
            return nn.Projection(pre, post, conn, w, nn.Expon(post.size, tau), out)

        def rand(pre: nn.LIF, post: nn.LIF, k: int) -> nn.Connector:
            return nn.FixedProb(p, allow_self=pre is not post, seed=seed + k)

        self.E2E = proj(self.E, self.E, rand(self.E, self.E, 1), w_e, 5.0, out_e())
        self.E2I = proj(self.E, self.I, rand(self.E, self.I, 2), w_e, 5.0, out_e())
        self.I2E = proj(self.I, self.E, rand(self.I, self.E, 3), w_i, 10.0, out_i())
        self.I2I = proj(self.I, self.I, rand(self.I, self.I, 4), w_i, 10.0, out_i())
        if drive == "kick":
            # One independent Poisson train per neuron into an excitatory synapse of its own
            # (linear synapses: the same as adding the kick to the recurrent conductance).
            self.kick_E = KickGroup(n_e, kick_rate, kick_ms)
            self.kick_I = KickGroup(n_i, kick_rate, kick_ms)
            self.K2E = proj(self.kick_E, self.E, nn.OneToOne(), w_e, 5.0, out_e())
            self.K2I = proj(self.kick_I, self.I, nn.OneToOne(), w_e, 5.0, out_e())
        if drive == "constant" and synapse == "coba":
            self.bias_E = nn.ConstantInput(self.E, float(I_ext))
            self.bias_I = nn.ConstantInput(self.I, float(I_ext))
        self.kick_ms, self.kick_rate = float(kick_ms), float(kick_rate)
