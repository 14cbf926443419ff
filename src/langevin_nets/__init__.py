"""langevin-nets: Bayesian neural networks sampled with BAOAB Langevin dynamics and SMC."""

from langevin_nets.activations import ACTIVATIONS, get_activation
from langevin_nets.classic import GaussianDenseNN
from langevin_nets.datasets import Standardizer, load_uci, toy_problem
from langevin_nets.errors import DivergenceError
from langevin_nets.kernels.baoab import BAOABInfo, BAOABState, build_kernel
from langevin_nets.langevin import LangevinTrace, langevin
from langevin_nets.model import BayesianMLP, Posterior
from langevin_nets.networks import Network, mlp
from langevin_nets.optimize import MAPResult, find_map
from langevin_nets.predict import Prediction, predict
from langevin_nets.smc import SMCHistory, SMCResult, smc

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BAOABInfo",
    "BAOABState",
    "BayesianMLP",
    "DivergenceError",
    "GaussianDenseNN",
    "LangevinTrace",
    "MAPResult",
    "Network",
    "Posterior",
    "Prediction",
    "SMCHistory",
    "SMCResult",
    "Standardizer",
    "build_kernel",
    "find_map",
    "get_activation",
    "langevin",
    "load_uci",
    "mlp",
    "predict",
    "smc",
    "toy_problem",
]
