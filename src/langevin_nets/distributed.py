"""Runs spanning several processes (machines), on top of :mod:`jax.distributed`.

Every process runs the same program with the same inputs; after :func:`initialize`,
``jax.devices()`` lists the devices of all processes, so that
:func:`langevin_nets.smc.smc` (``devices=...``) shards the particles over all of them.
Each process then holds the same host-side result; only the main process (id 0)
should write outputs.

>>> from langevin_nets import distributed                          # doctest: +SKIP
>>> distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=0)
>>> result = smc(posterior, key, num_particles=1024)   # particles over all devices
>>> if distributed.is_main_process():
...     save(result)

On CPU the processes exchange data through Gloo collectives
(``jax_cpu_collectives_implementation``), which :func:`initialize` turns on if unset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

# The CPU backend needs a cross-process collective library; Gloo ships with jaxlib.
CPU_COLLECTIVES = "gloo"


def parse_coordinator(coordinator: Any, name: str = "coordinator") -> tuple[str, int]:
    """``(host, port)`` of a ``HOST:PORT`` address (``[v6-address]:PORT`` for IPv6).

    Raises
    ------
    TypeError
        If ``coordinator`` is not a string.
    ValueError
        If it is not of the form ``HOST:PORT`` with a port from 1 to 65535.
    """
    if not isinstance(coordinator, str):
        raise TypeError(f"{name} must be a string HOST:PORT, got {coordinator!r}")
    text = coordinator.strip()
    what = f"{name} must be HOST:PORT (e.g. 10.0.0.1:1234), got {coordinator!r}"
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(what)
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(what) from None
    elif ":" in host or any(c.isspace() for c in host) or "/" in host:
        raise ValueError(what)
    p = int(port)
    if not 1 <= p <= 65535:
        raise ValueError(f"{name} port must be from 1 to 65535, got {coordinator!r}")
    return host, p


def check_process_options(coordinator: Any, num_processes: Any, process_id: Any) -> None:
    """Check the arguments of :func:`initialize` (no JAX call).

    Raises
    ------
    TypeError, ValueError
        Naming the bad argument.
    """
    parse_coordinator(coordinator)
    for name, v in (("num_processes", num_processes), ("process_id", process_id)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an integer, got {v!r}")
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id must be from 0 to num_processes - 1 = {num_processes - 1}, "
            f"got {process_id}"
        )


def backend_started() -> bool:
    """Whether JAX has already created its backends (after that it is too late to join)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - private module moved
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def initialize(
    coordinator: str,
    num_processes: int,
    process_id: int,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    timeout: int = 300,
) -> None:
    """Join this process to a multi-process JAX run.

    Call it in every process, with the same ``coordinator`` and ``num_processes`` and
    each its own ``process_id``, before any other JAX call (computations, but also
    ``jax.devices()``). Process 0 runs the coordinator service at ``coordinator``; the
    others connect to it.

    Parameters
    ----------
    coordinator : str
        ``HOST:PORT`` of process 0, reachable from every process.
    num_processes : int
        Number of processes, at least 1.
    process_id : int
        This process's id, from 0 to ``num_processes - 1``.
    local_device_ids : int or sequence of int, optional
        The local devices this process uses (default: all).
    timeout : int
        Seconds to wait for all processes to connect.

    Raises
    ------
    TypeError, ValueError
        Bad arguments.
    RuntimeError
        If JAX has already started its backends in this process, or this process has
        already been initialised.
    """
    check_process_options(coordinator, num_processes, process_id)
    import jax

    from langevin_nets.validation import positive_int

    positive_int(timeout, "timeout")
    if backend_started():
        raise RuntimeError(
            "langevin_nets.distributed.initialize() must be called before any other JAX "
            "call (computations, jax.devices(), ...); this process has already started "
            "JAX's backends, so call it first thing"
        )
    # Only the CPU backend reads this; GPU and TPU backends bring their own collectives.
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", CPU_COLLECTIVES)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator.strip(),
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
            initialization_timeout=timeout,
        )
    except RuntimeError as e:
        if "should only be called once" in str(e):
            raise RuntimeError(
                "langevin_nets.distributed.initialize() was already called in this process"
            ) from None
        raise


def is_initialized() -> bool:
    """Whether this process has joined a multi-process run."""
    try:
        from jax._src import distributed as _d
    except ImportError:  # pragma: no cover
        return False
    return getattr(_d.global_state, "client", None) is not None


def process_index() -> int:
    """This process's id (0 when not in a multi-process run)."""
    import jax

    return int(jax.process_index())


def process_count() -> int:
    """Number of processes of the run (1 when not in a multi-process run)."""
    import jax

    return int(jax.process_count())


def is_main_process() -> bool:
    """Whether this is process 0, the one that should write outputs (always true alone)."""
    return process_index() == 0


def shutdown() -> None:
    """Leave the multi-process run (waits for the other processes); no-op if not in one."""
    if is_initialized():
        import jax

        jax.distributed.shutdown()


__all__ = [
    "check_process_options",
    "initialize",
    "is_initialized",
    "is_main_process",
    "parse_coordinator",
    "process_count",
    "process_index",
    "shutdown",
]
