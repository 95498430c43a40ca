"""Loaded pipelines kept in a byte-counted LRU that evicts until the next model fits.

Each loaded model is charged to the memory it sits in: GPU memory for a model placed on a CUDA
device, CPU memory for a model on the CPU or offloaded to it. Before a load, the least recently
used models on that memory are dropped until the estimate fits what the system reports free
(and under an operator's limit, when one is set). A model that still does not fit on the GPU
is placed with CPU offload, and VAE tiling and slicing switch on when memory is short.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

GIB = 1 << 30
# Headroom kept free beside the weights for activations, as a share of the weights' size.
ACTIVATION_SHARE = 0.25


class MemoryProbe(Protocol):
    """How much memory the system has free now, in bytes, per memory ("cpu" or "cuda:N")."""

    def free_bytes(self, memory: str) -> int: ...


class SystemMemory:
    """Free memory as the OS (psutil) and the CUDA driver report it."""

    def free_bytes(self, memory: str) -> int:
        if memory.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(memory))
            return int(free)
        import psutil

        return int(psutil.virtual_memory().available)


def memory_of(device: str) -> str:
    """The memory a device's tensors live in: "cuda:N" for a GPU, else "cpu"."""
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    return "cpu"


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs, chosen from its size and the memory free for it."""

    device: str
    dtype: torch.dtype
    offload: str = "none"  # "none", "model" (whole components move in turn), "sequential"
    vae_tiling: bool = False
    vae_slicing: bool = False

    @property
    def charged_to(self) -> str:
        """The memory the weights occupy while the model waits between calls."""
        return "cpu" if self.offload != "none" else memory_of(self.device)


def choose_placement(
    device: str, dtype: torch.dtype, model_bytes: int, largest_part: int, free: int
) -> Placement:
    """Full placement when weights plus headroom fit; on a GPU otherwise CPU offload of whole
    components when the largest fits, else layer by layer. VAE slicing when memory is short,
    tiling when even offloading is."""
    need = int(model_bytes * (1 + ACTIVATION_SHARE))
    if need <= free or not device.startswith("cuda"):
        short = need > free
        return Placement(device, dtype, "none", vae_tiling=short, vae_slicing=short)
    if int(largest_part * (1 + ACTIVATION_SHARE)) <= free:
        return Placement(device, dtype, "model", vae_tiling=False, vae_slicing=True)
    return Placement(device, dtype, "sequential", vae_tiling=True, vae_slicing=True)


def module_bytes(*values: Any) -> int:
    """Bytes of every parameter and buffer of the torch modules in pipelines or modules
    (a tensor shared between them counted once)."""
    modules = [module for value in values for module in _modules(value)]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def largest_module_bytes(value: Any) -> int:
    return max((module_bytes(m) for m in _modules(value)), default=0)


def _modules(value: Any) -> list[torch.nn.Module]:
    if isinstance(value, torch.nn.Module):
        return [value]
    parts = getattr(value, "components", None)
    if isinstance(parts, Mapping):
        return [v for v in parts.values() if isinstance(v, torch.nn.Module)]
    return []


@dataclass(frozen=True)
class Loaded:
    """What a load gives the cache: the value, the memory it sits in, and its bytes there."""

    value: Any
    memory: str
    nbytes: int

    @classmethod
    def of(cls, value: Any, memory: str) -> Loaded:
        """`value` charged with the bytes of its torch modules."""
        return cls(value, memory, module_bytes(value))


@dataclass
class _Slot:
    value: Any
    nbytes: int
    memory: str
    lock: threading.RLock = field(default_factory=threading.RLock)


class ModelCache:
    """Loaded models by key, least recently used first out, counted in bytes per memory."""

    def __init__(
        self, probe: MemoryProbe | None = None, *, limits: Mapping[str, int] | None = None
    ) -> None:
        self._probe = probe or SystemMemory()
        self._limits = dict(limits or {})  # memory -> most bytes of models kept there
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = threading.RLock()
        self.evictions: list[str] = []  # keys evicted, oldest first (shown by `models show`)

    def get_or_load(
        self, key: str, memory: str, estimate: int, load: Callable[[int], Loaded]
    ) -> tuple[Any, threading.RLock]:
        """The cached value for `key`, else `load(free_bytes)` after making room for
        `estimate` bytes on `memory`; the cache then charges what the load reports.
        Also returns the slot's lock, which callers hold while they use the value."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                self._slots.move_to_end(key)
                return slot.value, slot.lock
            free = self.make_room(memory, estimate)
            loaded = load(free)
            slot = _Slot(loaded.value, loaded.nbytes, loaded.memory)
            self._slots[key] = slot
            return loaded.value, slot.lock

    def make_room(self, memory: str, need: int, *, keep: str | None = None) -> int:
        """Evict least recently used models on `memory` until `need` bytes fit, or until none
        is left there but `keep` (a model that grows: an adapter loaded into it); returns the
        bytes free afterwards."""
        with self._lock:
            free = self.free(memory)
            for key in [k for k, s in self._slots.items() if s.memory == memory and k != keep]:
                if free >= need:
                    break
                self.evict(key)
                free = self.free(memory)
            return free

    def free(self, memory: str) -> int:
        """Bytes free on `memory`: what the system reports, capped by the operator's limit."""
        free = self._probe.free_bytes(memory)
        if memory in self._limits:
            free = min(free, self._limits[memory] - self.used(memory))
        return max(free, 0)

    def recharge(self, key: str, nbytes: int) -> None:
        """Charge a cached model what it holds now (after an adapter was loaded into it)."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                slot.nbytes = nbytes

    def used(self, memory: str) -> int:
        return sum(s.nbytes for s in self._slots.values() if s.memory == memory)

    def evict(self, key: str) -> None:
        with self._lock:
            slot = self._slots.pop(key, None)
            if slot is None:
                return
            with slot.lock:  # wait for a running generation to finish with it
                self.evictions.append(key)
                slot.value = None
            del slot
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def lru_order(self) -> list[str]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._slots)

    def charged(self) -> dict[str, tuple[str, int]]:
        """key -> (memory, bytes) for every cached model."""
        with self._lock:
            return {k: (s.memory, s.nbytes) for k, s in self._slots.items()}

    def clear(self) -> None:
        for key in self.lru_order():
            self.evict(key)
