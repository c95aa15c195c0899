"""Module and Parameter bookkeeping, state dicts and checkpoints, Linear, Embedding, Dropout, init."""
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, storage
from tinygrad_seq.nn import functional as F

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


class Tree(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.heads = [nn.Linear(4, 2), nn.Linear(4, 1, bias=False)]
        self.extras = {"scale": nn.Parameter(ts.ones(1)), "inner": nn.Sequential(nn.Linear(2, 2))}
        self.shared = self.encoder  # the same module twice: its parameters count once
        self.note = "not a parameter"

    def forward(self, x):
        return self.heads[0](self.encoder(x))


def test_named_parameters_walk_lists_dicts_and_nesting():
    names = [name for name, _ in Tree().named_parameters()]
    # PyTorch's order: a module's own parameters, then each sub-module's, depth first
    assert names == [
        "extras.scale", "encoder.weight", "encoder.bias",
        "heads.0.weight", "heads.0.bias", "heads.1.weight",
        "extras.inner.0.weight", "extras.inner.0.bias",
    ]
    tree = Tree()
    assert tree.encoder.weight.name == "weight" and tree.extras["scale"].name is None
    assert tree.num_parameters() == 16 + 1 + 10 + 4 + 6


class HidesFrozen(nn.Module):
    """Walks past its frozen part: its own named_children (or named_modules) leave it out."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(2, 2)
        self.kept = nn.Linear(2, 1)


def test_a_modules_own_walk_decides_which_parameters_it_has():
    class OwnChildren(HidesFrozen):
        def named_children(self):
            return ((name, child) for name, child in super().named_children() if name != "frozen")

    class OwnModules(HidesFrozen):
        def named_modules(self, prefix=""):
            return ((name, module) for name, module in super().named_modules(prefix) if not name.startswith("frozen"))

    for model in (OwnChildren(), OwnModules()):
        assert [name for name, _ in model.named_parameters()] == ["kept.weight", "kept.bias"], type(model).__name__
    assert [name for name, _ in HidesFrozen().named_parameters()] == ["frozen.weight", "frozen.bias", "kept.weight", "kept.bias"]


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"Broken: cannot set 'layer' before Module.__init__\(\); call super\(\).__init__\(\) first"):
        Broken()


    class BrokenCell(nn.RecurrentCell):  # a cell's parent takes its sizes: the message writes the call out
        def __init__(self, input_size, hidden_size):
            self.scale = 2.0

    with pytest.raises(AttributeError, match=r"BrokenCell: cannot set 'scale' .*; call super\(\).__init__\(input_size, "
                                             r"hidden_size\) first in your __init__$"):
        BrokenCell(3, 4)


    class WiderLinear(nn.Linear):  # so for the layers whose __init__ takes sizes
        def __init__(self):
            self.scale = 2.0

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(in_features, out_features\) first in your __init__$"):
        WiderLinear()


def test_repr_shows_the_tree_and_counts():
    text = repr(Tree())
    assert text.startswith("Tree(  # 37 parameters")
    assert "  (encoder): Linear(in_features=3, out_features=4, bias=True)  # 16" in text
    assert "  (heads.1): Linear(in_features=4, out_features=1, bias=False)  # 4" in text
    assert "  (extras.inner): Sequential(  # 6 parameters\n    (0): Linear(in_features=2, out_features=2, bias=True)  # 6" in text


def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and list(seq)[2] is seq[2]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = ts.Tensor(np.ones((5, 3)))
    np.testing.assert_allclose(seq(x).numpy(), seq[2](seq[0](x).tanh()).numpy())
    layers = nn.ModuleList([nn.Linear(2, 2)]).append(nn.Linear(2, 3))
    assert len(layers) == 2 and [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_state_dict_is_a_host_copy():
    model = nn.Linear(2, 3)
    state = model.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    state["weight"][...] = 100
    assert not (model.weight.numpy() == 100).any()


def test_load_state_dict_copies_and_keeps_dtype():
    source, target = nn.Linear(3, 2).double(), nn.Linear(3, 2)
    weight_buffer = target.weight.data
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.weight.dtype == np.float32 and target.weight.data is weight_buffer  # copied in place
    np.testing.assert_allclose(target.weight.numpy(), source.weight.numpy(), rtol=1e-6)


def test_load_state_dict_errors_list_every_problem_and_change_nothing():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    before = model.state_dict()
    bad = dict(model.state_dict())
    bad["0.weight"] = np.zeros((5, 3))
    del bad["1.bias"]
    bad["2.weight"] = np.zeros(1)
    with pytest.raises(KeyError) as error:
        model.load_state_dict(bad)
    message = str(error.value)
    assert "mis-shaped: 0.weight: checkpoint (5, 3) vs model (2, 3)" in message
    assert "missing: 1.bias" in message and "unexpected: 2.weight" in message
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    del bad["0.weight"]
    result = model.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["0.weight", "1.bias"] and result.unexpected_keys == ["2.weight"]
    with pytest.raises(KeyError, match="mis-shaped"):
        model.load_state_dict({"0.weight": np.zeros((1, 1))}, strict=False)
    assert isinstance(error.value, nn.StateDictError) and message.startswith("load_state_dict into Sequential: ")  # not quoted


def test_load_state_dict_names_a_prefix_and_refuses_what_is_no_state_dict():
    """A prefixed state dict was told to "build the model with the sizes the checkpoint was saved with"; a list or a
    module failed inside Python ("argument of type 'LSTM' is not iterable")."""
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(3, 4), nn.Linear(4, 2)

    model = Model()
    with pytest.raises(nn.StateDictError, match=r"\. The saved keys carry the prefix 'lstm\.' \(saved from a model that holds this "
                                                r"one\): load \{k\.removeprefix\('lstm\.'\): v for k, v in state\.items\(\) if "
                                                r"k\.startswith\('lstm\.'\)\}, or pass strict=False") as hint:
        model.lstm.load_state_dict(model.state_dict())
    with pytest.raises(nn.StateDictError, match=r"\. The model's keys start with 'lstm\.' and the saved ones do not \(saved from the "
                                                r"module at 'lstm'\): load them into that module, model\.lstm\.load_state_dict\(state\)"):
        model.load_state_dict(model.lstm.state_dict())
    # the hint's code, as printed, loads the weights
    state = {k: v + 1.0 for k, v in model.state_dict().items()}
    model.lstm.load_state_dict(eval(re.search(r"load (\{.*\}), or pass", str(hint.value)).group(1), {"state": state}))
    assert all(np.array_equal(value, state["lstm." + k]) for k, value in model.lstm.state_dict().items())
    with pytest.raises(TypeError, match=r"^load_state_dict into Model: takes a state dict, a mapping of parameter names to arrays "
                                        r"\(what state_dict\(\) returns\); got list$"):
        model.load_state_dict([1, 2])
    with pytest.raises(TypeError, match=r"; got Model; to copy another module's weights: model\.load_state_dict\(other\.state_dict\(\)\)$"):
        model.load_state_dict(Model())
    with pytest.raises(nn.StateDictError, match=r"unexpected: x\. The keys are another model's\? Load the state dict of a model built "
                                                r"as this one, or pass strict=False"):
        nn.Linear(2, 2).load_state_dict({"weight": np.zeros((2, 2)), "bias": np.zeros(2), "x": 1})


def test_layers_and_losses_take_arrays_and_name_what_they_cannot_use():
    """Linear given an array advised passing it "as a keyword argument (weight_t)"; cross_entropy of int logits
    failed with a ufunc casting error, nll_loss of a 0-d tensor with an IndexError, dropout of ints scaled by an
    int, and a string p or mode with a bare comparison or KeyError."""
    layer = nn.Linear(3, 2)
    np.testing.assert_array_equal(layer(np.ones((2, 3), dtype=np.float32)).numpy(), layer(ts.ones(2, 3)).numpy())
    for call, error, message in [
        (lambda: F.cross_entropy(ts.Tensor([[1, 2]]), [0]), TypeError, r"^cross_entropy: logits must be floats; got int64\. Convert them"),
        (lambda: F.nll_loss(ts.Tensor(1.0), 0), ValueError, r"^nll_loss: log_probs need a class axis \(classes last: \(\.\.\., C\)\); got a 0-d tensor$"),
        (lambda: F.dropout(ts.Tensor([1, 2]), 0.3), TypeError, r"^dropout: x must hold floats; got int64\. Cast it first: x\.float\(\)$"),
        (lambda: nn.Dropout("0.5"), ValueError, r"^Dropout: p is a probability in \[0, 1\]; got '0\.5'$"),
        (lambda: nn.init.kaiming_uniform_(ts.zeros(2, 2), mode="fan_avg"), ValueError, r"^kaiming_uniform_: mode must be 'fan_in' or 'fan_out'"),
    ]:
        with pytest.raises(error, match=message):
            call()
    np.testing.assert_allclose(F.cross_entropy(np.zeros((2, 3)), [0, 1]).item(), math.log(3))  # an array of logits is taken



def test_a_newcomers_mix_ups_are_named_with_their_fix(tmp_path):
    """Words where ids go were told to .astype(int); a layer's (output, state) given to a Linear was told to pad ragged
    lists; a checkpoint folder given to Module.load was a bare IsADirectoryError."""
    with pytest.raises(TypeError, match=r"^Embedding\(10, 4\): ids \(token indices\) must be integers; got text \(\['the', 'cat'\] \.\.\.\)\. "
                                        r"Turn text into ids with a vocabulary first: vocab\.encode\(text\)$"):
        nn.Embedding(10, 4)(["the", "cat"])
    lstm, head = nn.LSTM(3, 4), nn.Linear(4, 2)
    with pytest.raises(TypeError, match=r"^Linear\(4 -> 2\): got a tuple of 2, not a tensor: a recurrent layer returns \(output, state\); "
                                        r"pass the output: out, _ = rnn\(x\); head\(out\)$"):
        head(lstm(ts.randn(5, 2, 3)))
    # the same mistake anywhere a tensor goes through as_tensor, where it was told to pad ragged lists
    with pytest.raises(TypeError, match=r"^dropout: got a tuple of 2, not a tensor: a recurrent layer returns \(output, state\)"):
        nn.Dropout(0.5)(lstm(ts.randn(5, 2, 3)))
    with pytest.raises(TypeError, match=r"^cross_entropy: got a tuple of 2, not a tensor: a recurrent layer returns"):
        nn.functional.cross_entropy(lstm(ts.randn(5, 2, 3)), np.zeros((5, 2), dtype=int))
    with pytest.raises(ts.storage.CheckpointError, match=r"^LSTM\.load: .* is a folder; Module\.load reads the \.npz file Module\.save wrote"):
        lstm.load(tmp_path)


def test_course_gradients_refuse_a_cell_the_course_has_no_parameters_for():
    """A PyTorch-form GRU's gradients came back under the course's keys, as if reset_after=False."""
    cell = nn.GRUCell(2, 3)
    cell(ts.randn(1, 2), ts.zeros(1, 3)).sum().backward()
    with pytest.raises(TypeError, match=r"^course_gradients: the course has no parameters for GRUCell\(2, 3\); it fills RNNCell, "
                                        r"LSTMCell \(without peepholes\), GRUCell\(reset_after=False\) and SimplifiedGRUCell$"):
        nn.course_gradients(cell)


def test_loading_a_layer_of_other_num_layers_or_directions_names_them():
    """The error listed the unexpected keys (..._l1, ..._reverse) but not what they say, as it does for another cell."""
    with pytest.raises(nn.StateDictError, match=r"The checkpoint's keys are those of the layer with num_layers=2, bidirectional=True; "
                                                r"the model's with num_layers=1, bidirectional=False: build the model as the "
                                                r"checkpoint was saved, or pass strict=False"):
        nn.LSTM(3, 4).load_state_dict(nn.LSTM(3, 4, num_layers=2, bidirectional=True).state_dict())

    class Holder(nn.Module):
        def __init__(self, **options):
            super().__init__()
            self.rnn = nn.GRU(3, 4, **options)

    with pytest.raises(nn.StateDictError, match=r"those of the layer at 'rnn' with num_layers=1, bidirectional=False; the "
                                                r"model's with num_layers=2, bidirectional=False"):
        Holder(num_layers=2).load_state_dict(Holder().state_dict())
    Holder(num_layers=2).load_state_dict(Holder(num_layers=2).state_dict())  # built as saved: loads
    with pytest.raises(nn.StateDictError) as error:  # a partial load meant (strict=False) whose sizes differ: sizes named
        nn.LSTM(3, 5, num_layers=2).load_state_dict(nn.LSTM(3, 4).state_dict(), strict=False)
    assert "num_layers" not in str(error.value) and str(error.value).endswith("Build the model with the sizes the checkpoint was saved with")


def test_loading_another_cells_weights_says_which_cells():
    with pytest.raises(nn.StateDictError) as error:
        nn.LSTM(8, 32).load_state_dict(nn.GRU(8, 32).state_dict())
    assert str(error.value).endswith(
        "weight_hh_l0 holds 3 gate blocks of H = 32 rows in the checkpoint (as a GRU has) and 4 in the model's LSTM: "
        "build the model with the cell the checkpoint was saved with")
    with pytest.raises(nn.StateDictError) as error:  # another cell and another input size
        nn.LSTM(16, 32).load_state_dict(nn.GRU(8, 32).state_dict())
    assert str(error.value).endswith("build the model with the cell and the sizes the checkpoint was saved with")

    class OneBlockCell(nn.RNNCell):  # a user's cell is named by its class, not by the built-in cell of its gate count
        pass

    class Cells(nn.Module):  # the weight's module found past a list attribute
        def __init__(self, cell):
            super().__init__()
            self.cells = [cell]

    with pytest.raises(nn.StateDictError, match=r"cells.0.weight_hh holds .* and 4 in the model's LSTMCell"):
        Cells(nn.LSTMCell(8, 32)).load_state_dict(Cells(nn.GRUCell(8, 32)).state_dict())
    with pytest.raises(nn.StateDictError) as error:
        nn.Recurrent(OneBlockCell(8, 32)).load_state_dict(nn.Recurrent(nn.GRUCell(8, 32)).state_dict())
    assert "cell.weight_hh holds 3 gate blocks of H = 32 rows in the checkpoint (as a GRU has) and 1 in the model's " \
           "OneBlockCell" in str(error.value)
    with pytest.raises(nn.StateDictError) as error:  # another H is a size, not a cell
        nn.LSTM(8, 24).load_state_dict(nn.LSTM(8, 32).state_dict())
    assert str(error.value).endswith("Build the model with the sizes the checkpoint was saved with")


def test_save_and_load_round_trip(tmp_path):
    ts.manual_seed(1)
    model = Tree()
    path = model.save(tmp_path / "checkpoint")  # a bare name: written exactly there, no ".npz" added
    assert path == tmp_path / "checkpoint" and path.exists() and not (tmp_path / "checkpoint.npz").exists()
    ts.manual_seed(2)
    other = Tree()
    other.load(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(2, 2)
    path = model.save(tmp_path / "model.npz")
    saved = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        nn.Linear(2, 2).save(path)
    assert path.read_bytes() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def test_a_save_over_a_file_keeps_its_permissions_and_its_links(tmp_path):
    import os
    import stat

    from tinygrad_seq.storage import CheckpointError

    path = nn.Linear(2, 2).save(tmp_path / "model.npz")
    os.chmod(path, 0o600)
    nn.Linear(2, 2).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a private file stays private
    link = tmp_path / "latest.npz"
    link.symlink_to(path)
    model = nn.Linear(2, 2)
    model.save(link)
    assert link.is_symlink() and link.resolve() == path.resolve()  # the file the link names was the one replaced
    other = nn.Linear(2, 2)
    other.load(path)
    np.testing.assert_array_equal(to_host(other.weight.data), to_host(model.weight.data))
    os.chmod(path, 0o400)
    saved = path.read_bytes()
    real_access = os.access
    with pytest.MonkeyPatch.context() as patch:  # as a user other than root sees it (root may write anything)
        patch.setattr(os, "access", lambda p, mode, **kw: real_access(p, mode, **kw) and os.stat(p).st_mode & 0o200 != 0)
        with pytest.raises(CheckpointError, match=r"is write-protected: nothing was written. Make it writable"):
            nn.Linear(2, 2).save(path)
    assert path.read_bytes() == saved and sorted(p.name for p in tmp_path.iterdir()) == ["latest.npz", "model.npz"]


def test_save_never_destroys_a_file_of_yours_nor_a_checkpoints(tmp_path):
    from tinygrad_seq.storage import CheckpointError
    from tinygrad_seq.text import Vocabulary

    notes = tmp_path / "notes.txt"
    notes.write_text("lr 1e-2 looked best")
    with pytest.raises(CheckpointError, match=rf"^Linear.save: {re.escape(str(notes))} exists and is not an .npz file of arrays "
                                              r"that Linear.save wrote; nothing was written, so as not to destroy it"):
        nn.Linear(2, 2).save(notes)
    with pytest.raises(CheckpointError, match=r"^Vocabulary.save: .* exists and is not a vocabulary that Vocabulary.save wrote"):
        Vocabulary.from_text(["ab"]).save(notes)
    assert notes.read_text() == "lr 1e-2 looked best"
    archive = tmp_path / "docs.zip"  # a zip, but not of arrays
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "mine")
    with pytest.raises(CheckpointError, match=r"exists and is not an .npz file of arrays"):
        nn.Linear(2, 2).save(archive)
    np.savez(tmp_path / "arrays.npz", x=np.zeros(2))  # np.savez's: an .npz, replaced as Module.save's own
    nn.Linear(2, 2).save(tmp_path / "arrays.npz")
    with tempfile.NamedTemporaryFile(suffix=".npz", dir=tmp_path) as empty:  # an empty file: a temporary file's
        nn.Linear(2, 2).save(empty.name)
        Vocabulary.from_text(["ab"]).save(empty.name + ".json")
    vocab = Vocabulary.from_text(["ab"])
    vocab.save(tmp_path / "vocab.json")
    Vocabulary.from_text(["abc"]).save(tmp_path / "vocab.json")  # its own kind of file: replaced
    assert len(Vocabulary.load(tmp_path / "vocab.json")) == len(vocab) + 1
    checkpoint = tmp_path / "run"  # what a training run wrote: a file saved into it breaks its manifest
    checkpoint.mkdir()
    (checkpoint / "manifest.json").write_text(json.dumps({"kind": storage.MANIFEST_KIND}))
    with pytest.raises(CheckpointError, match=r"is inside the checkpoint folder .*run, whose manifest a file written there would break"):
        nn.Linear(2, 2).save(checkpoint / "model.npz")
    for folder in (tmp_path, f"{tmp_path}/models/"):  # a folder, and a name that says it is one
        with pytest.raises(CheckpointError, match=r"^Linear.save: .* (is a folder|names a folder); Linear.save writes one file: give the file's name in it"):
            nn.Linear(2, 2).save(folder)
    assert not (tmp_path / "models").exists()
    with pytest.raises(CheckpointError, match=r"^Linear.save: cannot make the folder of .*notes.txt/model.npz \(.*\); nothing was written"):
        nn.Linear(2, 2).save(notes / "model.npz")  # its folder would be a file


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    path = nn.Linear(2, 2).save(tmp_path / "model.npz")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".model.npz.{int(dead.stdout)}-0123abcd.tmp"  # what a SIGKILLed save of that process left
    left.write_bytes(b"x" * 1000)
    ours = tmp_path / f".model.npz.{os.getpid()}-0123abcd.tmp"  # a live process's: its save in progress
    ours.write_bytes(b"y")
    nn.Linear(2, 2).save(path)  # written a moment ago: perhaps a save of another machine's sharing the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.npz", left.name, ours.name])
    an_hour_ago = time.time() - 3600
    for file in (left, ours):
        os.utime(file, (an_hour_ago, an_hour_ago))
    nn.Linear(2, 2).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.npz", ours.name])


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, weight=np.array([{"a": 1}], dtype=object), bias=np.zeros(2))
    with pytest.raises(ValueError, match=r"is not a file that Module.save wrote: NumPy reads it as pickled Python objects, "
                                         r"which are never loaded \(allow_pickle=False"):
        nn.Linear(2, 2).load(path)


def test_a_file_that_save_did_not_write_is_one_clear_error_and_loads_nothing(tmp_path):
    from tinygrad_seq.storage import CheckpointError

    model = nn.Linear(2, 2)
    before = {k: to_host(v).copy() for k, v in model.state_dict().items()}
    saved = nn.Linear(2, 2).save(tmp_path / "model.npz").read_bytes()
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "cut.npz").write_bytes(saved[: len(saved) // 2])
    (tmp_path / "empty.npz").write_bytes(b"")
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.pt", "w") as pytorchs:  # the layout torch.save writes, without torch
        for entry in ("model/data.pkl", "model/data/0", "model/version"):
            pytorchs.writestr(entry, b"\x80")
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as other:
        other.writestr("weight.npy", saved[:0] or b"")
        other.writestr("readme.txt", b"mine")
    for name, message in [("one.npy", r"holds one array \(a .npy file\), not the named arrays Module.save writes"),
                          ("model.pt", r"is a PyTorch file \(torch\.save\), whose tensors NumPy cannot read; load it with "
                                       r"torch\.load and copy its state dict over: ts\.interop\.from_torch\(model, torch\.load\(path\)\)$"),
                          ("notes.zip", r"is not a file that Module.save wrote: a zip holding files other than arrays \(readme\.txt\)$"),
                          ("cut.npz", r"is not a file that Module.save wrote, or it was cut short \(BadZipFile"),
                          ("empty.npz", r"is not a file that Module.save wrote, or it was cut short \(EOFError")]:
        with pytest.raises(CheckpointError, match=rf"^Linear.load: {tmp_path / name} {message}"):
            model.load(tmp_path / name)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(to_host(value), before[key])


def test_any_parameter_name_saves_and_loads(tmp_path):
    class Named(nn.Module):  # names that np.savez takes as its own arguments
        def __init__(self, value):
            super().__init__()
            self.file = nn.Parameter(ts.full((2,), value))
            self.allow_pickle = nn.Parameter(ts.full((3,), value))

    Named(1.5).save(tmp_path / "named.npz")
    loaded = Named(0.0)
    assert loaded.load(tmp_path / "named.npz") == ([], [])
    assert to_host(loaded.file.data).tolist() == [1.5, 1.5] and to_host(loaded.allow_pickle.data).tolist() == [1.5] * 3


def test_a_value_that_is_not_what_it_would_load_as_is_refused_and_nothing_changes():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    before = {k: to_host(v).copy() for k, v in model.state_dict().items()}
    changed = {k: to_host(v) + 1 for k, v in model.state_dict().items()}  # every other value would load
    for bad, message in [(np.array(["a", "b"]), r"1.bias: an array of <U1, not real numbers"),
                         (np.array([1 + 2j, 0]), r"1.bias: an array of complex128, not real numbers"),
                         (np.array([1e300, 0.0]), r"1.bias: values beyond float32's range \(largest magnitude 1e\+300\)")]:
        with pytest.raises(nn.StateDictError, match=rf"^load_state_dict into Sequential: unreadable: {message}\. Nothing was changed"):
            model.float().load_state_dict({**changed, "1.bias": bad})
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(to_host(value), before[key].astype(np.float32))
    model.load_state_dict({**changed, "1.bias": [5.0, 6.0]})  # a list of numbers still loads
    assert to_host(model[1].bias.data).tolist() == [5.0, 6.0]


def test_a_torch_tensor_that_requires_grad_is_named_and_nothing_changes():
    torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")
    lstm = nn.LSTM(3, 4)
    before = {k: to_host(v).copy() for k, v in lstm.state_dict().items()}
    reference = torch.nn.LSTM(3, 4)
    values = {k: v.detach() + 1 for k, v in reference.state_dict().items()}
    values["bias_hh_l0"] = reference.bias_hh_l0  # a Parameter: requires grad
    with pytest.raises(nn.StateDictError, match=r"unreadable: bias_hh_l0: a torch.Parameter that cannot be read as an array "
                                                r"\(Can't call numpy\(\) on Tensor that requires grad"):
        lstm.load_state_dict(values)
    for key, value in lstm.state_dict().items():
        np.testing.assert_array_equal(to_host(value), before[key])


def test_to_dtype_double_float_and_backend():
    model = nn.Linear(2, 2)
    (model(ts.Tensor(np.ones((1, 2), np.float32))).sum()).backward()
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters()) and to_host(model.weight.grad).dtype == np.float64
    model.float()
    assert model.weight.dtype == np.float32
    assert model.to("numpy") is model
    with pytest.raises(TypeError, match="parameters must stay floats"):
        model.to("int32")


def test_train_eval_and_zero_grad():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.eval()
    assert not model.training and not model[1].training
    x = ts.Tensor(np.ones((3, 2)))
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())  # dropout is off
    model.train()
    assert model[1].training
    model(x).sum().backward()
    assert model[0].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_evaluating_restores_the_flags_after_the_block_and_after_an_exception():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with nn.evaluating(model) as inside:
        assert inside is model
        assert not model.training and not model[1].training and not ts.is_grad_enabled()
        assert not model(ts.Tensor(np.ones((3, 2)))).requires_grad  # no graph recorded
    assert model.training and model[1].training and ts.is_grad_enabled()
    with pytest.raises(RuntimeError, match="in the block"):
        with nn.evaluating(model):
            raise RuntimeError("in the block")
    assert model.training and model[1].training and ts.is_grad_enabled()


def test_evaluating_nests_and_keeps_each_modules_own_flag():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model[1].eval()  # one part in eval mode on purpose: it stays there
    with nn.evaluating(model):
        with nn.evaluating(model[0]):
            assert not model[0].training
        assert not model.training and not model[0].training and not ts.is_grad_enabled()
    assert model.training and model[0].training and not model[1].training
    model.eval()
    with nn.evaluating(model):
        pass
    assert not model.training  # a model in eval mode stays in eval mode
    with ts.no_grad(), nn.evaluating(model):
        pass
    assert ts.is_grad_enabled()


# ---------------------------------------------------------------- layers


def test_linear_init_and_shapes(backend):
    layer = nn.Linear(16, 5)
    bound = 1 / math.sqrt(16)
    assert layer.weight.shape == (5, 16) and layer.bias.shape == (5,)
    for p in layer.parameters():
        values = to_host(p.data)
        assert values.min() >= -bound and values.max() <= bound and values.std() > bound / 4
    assert layer(ts.randn(7, 3, 16)).shape == (7, 3, 5)
    with pytest.raises(ValueError, match=r"Linear\(16 -> 5\): the input's last axis must be 16; got shape \(2, 3\)"):
        layer(ts.randn(2, 3))


def test_linear_and_embedding_grad_check():
    ts.set_default_dtype("float64")
    layer = nn.Linear(3, 2)
    x = ts.randn(4, 3, requires_grad=True)
    assert ts.grad_check(lambda x, w, b: x @ w.T + b, [x, layer.weight, layer.bias])
    assert ts.grad_check(lambda x: layer(x), [x])
    embedding = nn.Embedding(5, 3, padding_idx=1)
    ids = np.array([[0, 3, 4], [4, 4, 2]])  # not the padding id: its row gets no gradient by design
    assert ts.grad_check(lambda w: (embedding(ids) * ts.Tensor(np.arange(18.0).reshape(2, 3, 3))).sum(), [embedding.weight])


def test_embedding_lookup_and_gradient(backend):
    ts.manual_seed(0)
    embedding = nn.Embedding(6, 4, padding_idx=0)
    assert float(abs(embedding.weight[0]).sum()) == 0  # the padding row starts at zero
    ids = np.array([[1, 3, 0], [3, 3, 5]])
    out = embedding(ids)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(to_host(out.data), to_host(embedding.weight.data)[ids])
    upstream = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    out.backward(upstream)
    expected = np.zeros((6, 4), np.float32)
    np.add.at(expected, ids, upstream)
    expected[0] = 0  # padding_idx gets no gradient
    np.testing.assert_allclose(to_host(embedding.weight.grad), expected, rtol=1e-6)
    assert embedding(ts.Tensor(ids)).shape == (2, 3, 4) and embedding(np.int64(2)).shape == (4,)


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (np.array([0, 6]), IndexError, r"Embedding\(6, 4\): id 6 is out of range for a vocabulary of size 6 \(valid ids: 0..5\)"),
        (np.array([-1, 2]), IndexError, r"id -1 is out of range"),
        (np.array([0.0, 1.0]), TypeError, r"ids \(token indices\) must be integers; got float64"),
        ([[1, 2], [3]], ValueError,  # was NumPy's "inhomogeneous shape"
         r"^Embedding\(6, 4\): ids \(token indices\) must be rectangular; got lists of different lengths\. Pad the sequences "
         r"to one length first: ids, lengths = text\.pad_batch\(sequences\)"),
    ],
)
def test_embedding_bad_ids(ids, error, message):
    with pytest.raises(error, match=message):
        nn.Embedding(6, 4)(ids)


def test_embedding_bad_padding_idx():
    with pytest.raises(ValueError, match="padding_idx 9 is outside the vocabulary of size 6"):
        nn.Embedding(6, 4, padding_idx=9)
    with pytest.raises(ValueError, match="^Embedding: padding_idx must be an int or None; got True$"):
        nn.Embedding(6, 4, padding_idx=True)
    assert nn.Embedding(6, 4, padding_idx=np.int64(-1)).padding_idx == 5


def test_dropout_statistics_and_gradient(backend):
    ts.manual_seed(0)
    x = ts.ones(200_000, requires_grad=True)
    y = F.dropout(x, 0.3)
    values = to_host(y.data)
    assert abs((values == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(values[values != 0], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), values)  # the gradient goes through the same mask
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    assert float(F.dropout(x, 1.0).sum()) == 0.0


def test_dropout_is_seeded_and_checked():
    x = ts.ones(50)
    ts.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    ts.manual_seed(3)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5).numpy())
    with pytest.raises(ValueError, match=r"Dropout: p is a probability in \[0, 1\]; got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"dropout: p is a probability"):
        F.dropout(x, -0.1)


def test_dropout_grad_check_with_a_fixed_mask():
    x = ts.Tensor(np.linspace(-1, 1, 10), requires_grad=True)

    def dropped(x):
        ts.manual_seed(5)  # the same mask on every evaluation
        return F.dropout(x, 0.4) * x

    assert ts.grad_check(dropped, [x])


def test_one_hot():
    out = F.one_hot(np.array([[0, 2], [1, 1]]), 3)
    assert out.dtype == np.int64 and out.shape == (2, 2, 3)
    assert out.tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]]
    assert F.one_hot([1], 2, dtype="float32").dtype == np.float32
    with pytest.raises(IndexError, match=r"one_hot\(num_classes=3\): id 3 is out of range"):
        F.one_hot([3], 3)


# ---------------------------------------------------------------- init


def test_init_functions():
    ts.manual_seed(0)
    w = nn.Parameter(ts.zeros(200, 300, dtype="float64"))
    nn.init.uniform_(w, -0.5, 0.25)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 0.25
    nn.init.normal_(w, 1.0, 2.0)
    assert abs(w.numpy().mean() - 1.0) < 0.05 and abs(w.numpy().std() - 2.0) < 0.05
    nn.init.xavier_uniform_(w)
    assert abs(w.numpy()).max() <= math.sqrt(6 / 500)
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * math.sqrt(2 / 500)) < 0.005
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert abs(w.numpy()).max() <= 1 / math.sqrt(300)
    nn.init.zeros_(w)
    assert not w.numpy().any()
    nn.init.ones_(w)
    assert (w.numpy() == 1).all()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3)])
def test_orthogonal(shape):
    w = nn.init.orthogonal_(nn.Parameter(ts.zeros(*shape, dtype="float64")), gain=2.0)
    flat = w.numpy().reshape(shape[0], -1)
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


def test_init_is_seeded_and_checked():
    ts.manual_seed(9)
    a = nn.Linear(4, 4).weight.numpy().copy()
    ts.manual_seed(9)
    np.testing.assert_array_equal(a, nn.Linear(4, 4).weight.numpy())
    with pytest.raises(ValueError, match=r"fan in and fan out need a weight with at least 2 axes; got shape \(3,\)"):
        nn.init.xavier_uniform_(nn.Parameter(ts.zeros(3)))


def test_lengths_and_state_dict_values_may_be_arrays_of_the_backend(backend):
    ts.manual_seed(0)
    layer, twin = nn.RNN(2, 3), nn.RNN(2, 3)
    x = ts.randn(4, 2, 2)
    on_backend, _ = layer(x, lengths=backend.asarray(np.array([4, 2])))
    from_list, _ = layer(x, lengths=[4, 2])
    np.testing.assert_array_equal(on_backend.numpy(), from_list.numpy())
    twin.load_state_dict({name: backend.asarray(value) for name, value in layer.state_dict().items()})
    for (name, a), b in zip(layer.state_dict().items(), twin.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_dropout_with_one_layer_warns_that_it_changes_nothing():
    with pytest.warns(UserWarning, match=r"LSTM: dropout=0.5 acts between stacked layers, and one layer has none") as caught:
        nn.LSTM(3, 4, dropout=0.5)
    assert caught[0].filename == __file__  # the line that built the layer
    from tinygrad_seq.models import LanguageModel

    with pytest.warns(UserWarning, match=r"^LanguageModel: dropout=0.3 acts between stacked layers") as caught:
        LanguageModel(10, num_layers=1, dropout=0.3)  # built on Stacked directly: warned too (it said nothing before)
    assert caught[0].filename == __file__
    with pytest.raises(ValueError, match=r"^LSTM: dropout is a probability in \[0, 1\]; got 1.5"):
        nn.LSTM(3, 4, dropout=1.5)  # said by the layer called, before any warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.GRU(3, 4, num_layers=2, dropout=0.5)  # between two layers it acts: no warning
        nn.RNN(3, 4)
