import io
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from classifier.ml.torch_weights import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    UnsafePickleError,
    load_state_dict,
    restricted_loads,
)


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _Tensor:
    """Pickles like a torch tensor (no torch needed): a rebuild call on a persistent storage."""

    def __init__(self, pid, size, stride):
        self.pid, self.size, self.stride = pid, size, stride


class _TorchLikePickler(pickle.Pickler):
    def __init__(self, file, rebuild):
        super().__init__(file, protocol=2)
        self.rebuild = rebuild

    def persistent_id(self, obj):
        return getattr(obj, "storage_pid", None)

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            return self.rebuild, (_StorageRef(obj.pid), 0, obj.size, obj.stride, False, OrderedDict())
        return NotImplemented


class _StorageRef:
    def __init__(self, pid):
        self.storage_pid = pid


@pytest.fixture
def fake_global(monkeypatch):
    """Make a stand-in that pickles as ``module.name``, without torch; undone after the test."""

    def make(module, name):
        fake = type(name, (), {})
        fake.__module__, fake.__qualname__ = module, name
        monkeypatch.setitem(sys.modules, module, sys.modules.get(module) or types.ModuleType(module))
        monkeypatch.setattr(sys.modules[module], name, fake, raising=False)
        return fake

    return make


class TestRestrictedUnpickler:
    def test_refuses_a_pickle_that_calls_os_system(self, tmp_path):
        payload = pickle.dumps(_CallsSystem(), protocol=2)
        with pytest.raises(UnsafePickleError, match="system"):
            restricted_loads(payload)

    def test_refuses_os_system_inside_a_checkpoint_file(self, tmp_path):
        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({"w": _CallsSystem()}, protocol=2))
        with pytest.raises(UnsafePickleError):
            load_state_dict(path)

    def test_refuses_builtins_eval(self):
        payload = b"cbuiltins\neval\n(S'1+1'\ntR."
        with pytest.raises(UnsafePickleError, match="builtins.eval"):
            restricted_loads(payload)

    def test_allows_an_ordered_dict(self):
        assert restricted_loads(pickle.dumps(OrderedDict(a=1), protocol=2)) == OrderedDict(a=1)

    def test_reads_a_zip_checkpoint(self, tmp_path, fake_global):
        storage = fake_global("torch", "FloatStorage")
        rebuild = fake_global("torch._utils", "_rebuild_tensor_v2")
        values = np.arange(6, dtype="<f4")
        state = OrderedDict(w=_Tensor(("storage", storage, "0", "cpu", 6), (2, 3), (1, 2)))
        buffer = io.BytesIO()
        _TorchLikePickler(buffer, rebuild).dump(state)
        path = tmp_path / "ok.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            archive.writestr("archive/data/0", values.tobytes())

        loaded = load_state_dict(path)

        np.testing.assert_array_equal(loaded["w"], values.reshape(3, 2).T)  # column-major strides honoured

    def test_reads_a_legacy_checkpoint(self, tmp_path, fake_global):
        storage = fake_global("torch", "FloatStorage")
        rebuild = fake_global("torch._utils", "_rebuild_tensor_v2")
        values = np.arange(4, dtype="<f4")
        state = OrderedDict(b=_Tensor(("storage", storage, "k", "cpu", 4, None), (4,), (1,)))
        buffer = io.BytesIO()
        for header in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {"little_endian": True}):
            pickle.dump(header, buffer, protocol=2)
        _TorchLikePickler(buffer, rebuild).dump(state)
        pickle.dump(["k"], buffer, protocol=2)
        buffer.write(struct.pack("<q", 4) + values.tobytes())
        path = tmp_path / "legacy.pth"
        path.write_bytes(buffer.getvalue())

        np.testing.assert_array_equal(load_state_dict(path)["b"], values)

    def test_reads_the_packaged_lite0_checkpoint(self, lite0_weights_path):
        state = load_state_dict(lite0_weights_path)

        assert len(state) == 296
        assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
        assert state["_fc.weight"].shape == (1000, 1280)
        assert state["_conv_stem.weight"].dtype == np.float32
