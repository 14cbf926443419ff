"""Markov kernels as ``init``/``step`` pairs (see :mod:`langevin_nets.kernels.baoab`)."""

from langevin_nets.kernels.baoab import BAOABInfo, BAOABState, Kernel, build_kernel

__all__ = ["BAOABInfo", "BAOABState", "Kernel", "build_kernel"]
