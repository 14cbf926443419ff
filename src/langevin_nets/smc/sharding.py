"""Spreading SMC particles over devices: the mesh, the shardings and the checks.

The particles are split along one mesh axis named ``particles``: device ``d`` of ``D`` holds
particles ``d N/D, ..., (d + 1) N/D - 1`` (and their log weights and BAOAB states); every
other array (data, history, step size, PRNG key) is replicated. Per-particle work (the
log-likelihoods, the moves) then runs on each device's own particles, and XLA inserts the
collectives for the global steps (normalising the weights, the ESS, the evidence, the
adaptive schedules' bisection, the resampling gather).

The meshes built here have an ``Auto`` axis: the program is partitioned by XLA from the
sharding annotations, with no sharding-in-types rules on the ops in between. A user mesh
(of any axis types, e.g. the ``Explicit`` default of :func:`jax.make_mesh`, and any shape)
only names the devices: its devices, in order, make the ``particles`` axis of such a mesh.

With one device nothing is sharded: the program is the plain single-device one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

Array = jax.Array

#: Name of the mesh axis along which the particles are split.
PARTICLE_AXIS = "particles"


class Layout(NamedTuple):
    """Where an SMC run lives: its devices, and the mesh over them (None for one device)."""

    devices: tuple[Any, ...]
    mesh: Mesh | None

    @property
    def num_devices(self) -> int:
        return len(self.devices)


def particle_mesh(devices: Sequence[Any]) -> Mesh:
    """A 1-D mesh over ``devices`` with the ``Auto`` axis ``particles``."""
    return Mesh(np.asarray(devices, dtype=object), (PARTICLE_AXIS,), axis_types=(AxisType.Auto,))


def particle_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays with the particles along their first axis, split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(PARTICLE_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Arrays held whole on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def _device_list(devices: Any) -> list[Any]:
    if isinstance(devices, Mesh):
        return list(devices.devices.flat)
    if isinstance(devices, list | tuple):
        if not devices:
            raise ValueError("devices must not be an empty list")
        bad = [d for d in devices if not isinstance(d, jax.Device)]
        if bad:
            raise TypeError(
                f"devices must hold jax.Device objects (e.g. from jax.devices()), got "
                f"{type(bad[0]).__name__}"
            )
        if len(set(devices)) != len(devices):
            raise ValueError("devices must not repeat a device")
        return list(devices)
    raise TypeError(
        "devices must be None, a number of devices, a list of jax.Device or a "
        f"jax.sharding.Mesh, got {type(devices).__name__}"
    )


def resolve(devices: Any, num_particles: int) -> Layout:
    """Check the ``devices`` argument of :func:`~langevin_nets.smc.smc` and build the layout.

    Parameters
    ----------
    devices : None, int, list of jax.Device or jax.sharding.Mesh
        ``None``: every device (``jax.devices()``, all processes' in a multi-process run)
        when ``num_particles`` is divisible by their count, else one device and a
        ``UserWarning``. An int ``k``: the first ``k`` devices. A list: those devices. A
        mesh: its devices in order.
    num_particles : int

    Raises
    ------
    ValueError, TypeError
        For more devices than exist, a count that does not divide ``num_particles``, a
        device set of which this process holds none, or an argument of the wrong type.
    """
    available = jax.devices()
    if devices is None:
        if len(available) == 1:
            return Layout(tuple(available), None)
        if num_particles % len(available):
            warnings.warn(
                f"num_particles={num_particles} is not divisible by the {len(available)} "
                "available devices; running on one device (choose num_particles as a "
                "multiple of the device count to use them all)",
                UserWarning,
                stacklevel=3,
            )
            return Layout((jax.local_devices()[0],), None)
        chosen = available
    elif isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        k = int(devices)
        if k < 1:
            raise ValueError(f"devices must be a positive number of devices, got {k}")
        if k > len(available):
            raise ValueError(
                f"devices={k} asks for more devices than the {len(available)} available"
            )
        if k == 1:
            return Layout((jax.local_devices()[0],), None)
        chosen = available[:k]
    else:
        chosen = _device_list(devices)
    if num_particles % len(chosen):
        raise ValueError(
            f"num_particles={num_particles} must be divisible by the number of devices "
            f"({len(chosen)})"
        )
    if len(chosen) == 1:
        return Layout(tuple(chosen), None)
    here = jax.process_index()
    if not any(d.process_index == here for d in chosen):
        raise ValueError(
            f"none of the {len(chosen)} devices belongs to this process ({here}); every "
            "process of a multi-process run must hold some of them"
        )
    return Layout(tuple(chosen), particle_mesh(chosen))


def use(layout: Layout) -> Any:
    """Context manager: the layout's mesh as the current mesh (none for one device), in
    place of any mesh the caller has set."""
    return jax.set_mesh(layout.mesh)


def constrain(x: Any, mesh: Mesh | None) -> Any:
    """Inside the compiled program: mark the arrays of pytree ``x`` (particles first) as
    split over the mesh. A no-op without a mesh."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, particle_sharding(mesh))


def map_particles(f: Callable[[Any], Any], xs: Any, mesh: Mesh | None, chunk: int | None) -> Any:
    """``vmap(f)(xs)`` over the leading (particle) axis of the pytree ``xs``, optionally
    ``chunk`` particles at a time within each device's share.

    With a chunk the particles of each device are processed by a ``lax.map`` over chunks,
    so that the intermediate values of ``f`` (activations, gradients) are held for
    ``chunk`` particles per device, not ``N / D``. The results equal the unchunked ones to
    float rounding.
    """
    if chunk is None:
        return jax.vmap(f)(xs)
    leaves = jax.tree.leaves(xs)
    n = leaves[0].shape[0]
    d = 1 if mesh is None else mesh.devices.size
    per = n // d
    if chunk >= per:
        return jax.vmap(f)(xs)
    # (N, ...) -> (D, N/D, ...): one row per device, each scanned over its chunks locally.
    split = jax.tree.map(lambda a: a.reshape(d, per, *a.shape[1:]), xs)
    split = constrain(split, mesh)
    out = jax.vmap(lambda s: jax.lax.map(f, s, batch_size=chunk))(split)
    out = constrain(out, mesh)
    return jax.tree.map(lambda a: a.reshape(n, *a.shape[2:]), out)


def _host(x: Any) -> np.ndarray:
    """The value of a fully addressable array (or a host value) as numpy."""
    return np.asarray(x)


def put(tree: Any, layout: Layout, particle: bool) -> Any:
    """Place the arrays of ``tree`` for a run: split over the mesh along the first axis
    (``particle``) or replicated; on the single device without a mesh.

    Works in multi-process runs: every process passes the same values, and each one
    supplies the pieces its own devices hold.
    """
    if layout.mesh is None:
        return jax.device_put(tree, layout.devices[0])
    sharding = particle_sharding(layout.mesh) if particle else replicated(layout.mesh)

    def one(a: Any) -> Any:
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            data = one(jax.random.key_data(a))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
        if isinstance(a, jax.Array) and a.sharding == sharding:
            return a
        host = _host(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree)


def to_host(x: Any) -> Any:
    """Numpy values of the arrays of pytree ``x`` on every process: arrays split over
    several processes are gathered first."""

    def one(a: Any) -> Any:
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return a  # keys are replicated: keep them as keys
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            if a.is_fully_replicated:
                return np.asarray(a.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, x)
