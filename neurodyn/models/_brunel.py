"""Brunel (2000), model A: sparsely connected excitatory and inhibitory LIF neurons."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._environ import get_dt
from .._state import Variable
from .. import nn
from ._common import PoissonCounts, PopulationsMixin, lif_jump_factor

__all__ = ["Brunel2000", "VoltageJump", "Instant"]


class Instant(nn.Synapse):
    """A synapse without memory: ``g`` is this step's input (for delta synapses).

    Example:
        >>> from neurodyn.models._brunel import Instant
        >>> syn = Instant(100)
        >>> syn.update(2.0).tolist()[:2]
        [2.0, 2.0]
    """

    def update(self, x: Any = 0.0) -> jax.Array:
        self.g.value = jnp.broadcast_to(jnp.asarray(x, jnp.float32), self.g.shape)
        return self.g.value


class VoltageJump(nn.SynOut):
    """Output turning an input of ``J`` into a jump of ``J`` mV of an ``nn.LIF`` within the step.

    ``nn.LIF`` adds ``R I (1 - exp(-dt / tau))`` to V for a current ``I`` held over the step, so
    the current ``J / (R (1 - exp(-dt / tau)))`` moves V by exactly ``J`` (plus the leak).

    Example:
        >>> import neurodyn.nn as nn
        >>> from neurodyn.models._brunel import VoltageJump
        >>> out = VoltageJump(nn.LIF(10, tau=20.))
    """

    def __init__(self, target: nn.LIF) -> None:
        self.factor = lif_jump_factor(target.tau, float(target.R), get_dt())

    def update(self, g: Any, V: Any) -> jax.Array:
        return g * self.factor


class Brunel2000(PopulationsMixin, nn.Network):
    """Model A of Brunel (2000): ``E`` and ``I`` LIF neurons with delta synapses, one delay, Poisson drive.

    ``N_E = 10,000 * scale`` excitatory and ``N_I = N_E / 4`` inhibitory neurons; every neuron
    receives exactly ``C_E = 1000`` excitatory and ``C_I = 250`` inhibitory inputs
    (``nn.FixedPreNum``, no autapses) that make V jump by ``J`` and ``-g J`` mV after the delay
    ``D``, and ``C_E`` external Poisson inputs at ``nu_ext = eta * nu_thr`` (jumps of ``J``),
    ``nu_thr = theta / (J C_E tau)``. LIF: ``tau = 20`` ms, ``theta = 20`` mV, ``V_r = 10`` mV,
    ``tau_rp = 2`` ms, ``V_rest = 0``.

    The four states of the paper's Fig. 8 are :attr:`REGIMES`: A ``'SR'`` (g = 3, eta = 2:
    synchronous regular, neurons fire regularly at high rates), B ``'SI_fast'`` (g = 6,
    eta = 4: fast global oscillation, neurons fire irregularly below its frequency), C
    ``'AI'`` (g = 5, eta = 2: stationary global activity, irregular neurons) and D
    ``'SI_slow'`` (g = 4.5, eta = 0.9: slow oscillation, very low rates); pass ``regime=``
    or ``g`` and ``eta``.

    ``scale`` changes the number of neurons only: the in-degrees, weights and drive stay, so
    the mean and variance of every neuron's input at given rates (``mu = C_E J tau (nu_ext +
    nu (1 - g C_I / C_E))``, ``sigma^2 ~ J^2 C_E tau nu``), and with them the mean-field
    states, are those of the paper; only the connection probability ``C_E / N_E`` grows (0.1
    at full scale), and with it the share of common input. ``C_E`` and ``C_I`` can be given.

    Reference: N. Brunel (2000), Dynamics of sparsely connected networks of excitatory and
    inhibitory spiking neurons. J. Comput. Neurosci. 8:183-208.

    Example:
        >>> import neurodyn as nd
        >>> from neurodyn.models import Brunel2000
        >>> net = Brunel2000(regime='AI', scale=0.02, C_E=40, C_I=10)   # the paper: scale=1
        >>> runner = nd.Runner(net, monitors=net.spike_monitor(), progress_bar=False)
        >>> _ = runner.run(20.)
        >>> st = net.spike_trains(runner)     # for neurodyn.analysis
    """

    population_names = ("E", "I")
    REGIMES = {"SR": (3.0, 2.0), "SI_fast": (6.0, 4.0), "AI": (5.0, 2.0), "SI_slow": (4.5, 0.9)}
    #: the largest eta that ``set_regime`` can switch to (sizes the Poisson tables)
    MAX_ETA = 4.0

    def __init__(self, regime: str | None = None, g: float | None = None, eta: float | None = None,
                 scale: float = 1.0, J: float = 0.1, delay: float = 1.5, C_E: int = 1000, C_I: int = 250,
                 seed: int = 0) -> None:
        g, eta = self._regime_parameters(regime, g, eta)
        if not 0 < scale <= 10:
            raise ValueError(f"Brunel2000: scale must be in (0, 10], got {scale}")
        self.g, self.eta, self.scale, self.J, self.delay = float(g), float(eta), float(scale), float(J), float(delay)
        n_e = int(round(10_000 * scale))
        n_i = n_e // 4
        if not (0 < C_E < n_e and 0 < C_I < n_i):
            raise ValueError(f"Brunel2000: in-degrees C_E={C_E}, C_I={C_I} need more neurons than "
                             f"N_E={n_e}, N_I={n_i} (scale={scale}); raise scale or lower C_E, C_I")
        self.C_E, self.C_I = int(C_E), int(C_I)
        self.tau, self.theta, self.V_r, self.tau_rp = 20.0, 20.0, 10.0, 2.0
        self.nu_thr = self.theta / (self.J * self.C_E * self.tau) * 1000.0  # Hz
        self.nu_ext = self.eta * self.nu_thr
        lif = dict(V_rest=0.0, V_reset=self.V_r, V_th=self.theta, tau=self.tau, R=1.0, tau_ref=self.tau_rp,
                   V_initializer=nn.Uniform(0.0, self.theta))
        self.E = nn.LIF(n_e, **lif)
        self.I = nn.LIF(n_i, **lif)

        def proj(pre: nn.LIF, post: nn.LIF, c: int, w: float, k: int) -> nn.Projection:
            return nn.Projection(pre, post, nn.FixedPreNum(c, allow_self=pre is not post, seed=seed + k), w,
                                 Instant(post.size), VoltageJump(post), delay=self.delay, mode="event",
                                 max_spikes=max(16, pre.size // 20))

        # The inhibitory weight and the drive live in Variables: set_regime() changes them
        # without recompiling.
        self.w_inh = Variable(jnp.asarray(-self.g * self.J, jnp.float32))
        self.EE = proj(self.E, self.E, self.C_E, self.J, 1)
        self.EI = proj(self.E, self.I, self.C_E, self.J, 2)
        self.IE = proj(self.I, self.E, self.C_I, self.w_inh, 3)
        self.II = proj(self.I, self.I, self.C_I, self.w_inh, 4)
        # External drive: C_E Poisson inputs per neuron, each a jump of J mV.
        jump = self.J * lif_jump_factor(self.tau, 1.0, get_dt())
        max_rate = max(self.nu_ext, self.MAX_ETA * self.nu_thr)
        for k, grp in enumerate((self.E, self.I)):
            drive = PoissonCounts(np.full(grp.size, self.C_E), self.nu_ext, np.full(grp.size, jump), seed + 10 + k,
                                  max_rate=max_rate)
            setattr(self, f"ext_{'EI'[k]}", drive)
            grp.add_input("external", lambda V, drive=drive: drive.update())

    def set_regime(self, regime: str | None = None, *, g: float | None = None, eta: float | None = None) -> None:
        """Switch to another point of the phase diagram (same network) and reset the state.

        Changes only Variables, so a compiled Runner loop is reused (a scan of Fig. 8 compiles once).

        Example:
            >>> import neurodyn as nd
            >>> from neurodyn.models import Brunel2000
            >>> net = Brunel2000(regime='AI', scale=0.02, C_E=40, C_I=10)
            >>> runner = nd.Runner(net, progress_bar=False)
            >>> net.set_regime('SI_slow')       # then runner.reset(); runner.run(...)
            >>> net.g, net.eta
            (4.5, 0.9)
        """
        g, eta = self._regime_parameters(regime, g, eta)
        if eta * self.nu_thr > self.ext_E.max_rate:
            raise ValueError(f"Brunel2000.set_regime: eta={eta} exceeds the drive this network was built for "
                             f"(eta <= {self.ext_E.max_rate / self.nu_thr:g}); build a new network")
        self.g, self.eta = g, eta
        self.nu_ext = eta * self.nu_thr
        self.w_inh.value = jnp.asarray(-g * self.J, jnp.float32)
        self.ext_E.set_rate(self.nu_ext)
        self.ext_I.set_rate(self.nu_ext)
        self.reset_state()

    def _regime_parameters(self, regime: str | None, g: float | None, eta: float | None) -> tuple[float, float]:
        if regime is not None:
            if regime not in self.REGIMES:
                raise ValueError(f"Brunel2000: regime must be one of {list(self.REGIMES)}, got {regime!r}")
            if g is not None or eta is not None:
                raise ValueError("Brunel2000: pass either regime= or g= and eta=, not both")
            g, eta = self.REGIMES[regime]
        if g is None or eta is None:
            raise ValueError("Brunel2000: pass regime= (one of "
                             f"{list(self.REGIMES)}) or both g= and eta=")
        if g < 0 or eta < 0:
            raise ValueError(f"Brunel2000: g and eta must be >= 0, got g={g}, eta={eta}")
        return float(g), float(eta)
