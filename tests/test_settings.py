"""settings.override: the one way to set and restore settings; every mode is a thin use of it."""
import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, settings


def test_override_sets_and_restores_nested():
    assert settings.grad_enabled and not settings.transparent
    with settings.override(grad_enabled=False, transparent=True):
        assert not settings.grad_enabled and settings.transparent
        with settings.override(transparent=False, anomaly_mode=True):
            assert not settings.grad_enabled and not settings.transparent and settings.anomaly_mode
        assert settings.transparent and not settings.anomaly_mode
    assert settings.grad_enabled and not settings.transparent


def test_override_restores_after_an_exception():
    with pytest.raises(KeyError):
        with settings.override(default_dtype=np.dtype(np.float64), kernels=False):
            raise KeyError("inside")
    assert settings.default_dtype == np.float32 and settings.kernels


def test_one_override_entered_again_while_in_use():
    @settings.override(current_tags={"t": 7})
    def depth(n):
        assert settings.current_tags == {"t": 7}
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert settings.current_tags == {}


def test_override_refuses_an_unknown_setting():
    with pytest.raises(TypeError, match=r"no setting named 'transparant'.*transparent"):
        settings.override(transparant=True)
    with pytest.raises(TypeError, match="version_clock"):  # a fact about the process, not a setting
        settings.override(version_clock=0)


@pytest.mark.parametrize("mode, name, inside", [
    (ts.no_grad, "grad_enabled", False),
    (ts.enable_grad, "grad_enabled", True),
    (ts.detect_anomaly, "anomaly_mode", True),
    (ts.transparent, "transparent", True),
    (ts.without_kernels, "kernels", False),
])
def test_every_mode_is_an_override(mode, name, inside):
    outside = getattr(settings, name)
    assert isinstance(mode(), settings.override)
    with pytest.raises(RuntimeError):
        with mode():
            assert getattr(settings, name) == inside
            raise RuntimeError
    assert getattr(settings, name) == outside


def test_tags_and_use_backend_restore():
    with ts.tags(t=1):
        with ts.tags(layer=2) as current:
            assert current == {"t": 1, "layer": 2}
        assert settings.current_tags == {"t": 1}
    assert settings.current_tags == {}
    before = ts.get_backend()
    with pytest.raises(ValueError):
        with ts.use_backend("numpy"):
            raise ValueError
    assert ts.get_backend() is before


def test_snapshot_and_restore_cover_every_setting():
    saved = settings.snapshot()
    assert set(saved) == set(settings.SETTINGS)
    ts.manual_seed(5)
    ts.set_default_dtype("float64")

    @nn.register_cell("snapshot_probe")
    class Probe(nn.RNNCell):
        pass

    settings.transparent, settings.kernels, settings.current_tags = True, False, {"t": 3}
    settings.restore(saved)
    assert settings.seed == saved["seed"] and settings.default_dtype == np.float32
    assert "snapshot_probe" not in settings.cell_registry
    assert not settings.transparent and settings.kernels and settings.current_tags == {}


def test_the_docstring_lists_every_setting():
    for name in settings.SETTINGS + ("array_types", "cupy_loaded", "version_clock"):
        assert f"``{name}``" in settings.__doc__
