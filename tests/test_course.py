"""ts.course: the reference implementation of the course's functions, and the checker that grades a learner's.

The reference is proven three ways: by the checker (whose answers are the
engine's), against the engine directly, and by finite differences. Broken
learners are small variations of the reference's own source, so each test
names the one line that is wrong and the exact mismatches it must cause.
"""
import inspect
import math
import sys

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn
from tinygrad_seq.cli import main as cli
from tinygrad_seq.course import CourseImportError, check, reference
from tinygrad_seq.course.functions import BY_NAME, FUNCTIONS, Inputs

NAMES = [function.name for function in FUNCTIONS]
BACKWARD = [function.name for function in FUNCTIONS if function.is_backward]


def broken(old, new):
    """The reference module's code with the line ``old`` replaced by ``new``: a learner with one bug, as a dict."""
    source = inspect.getsource(reference)
    assert source.count(old) == 1, old
    namespace = {}
    exec(compile(source.replace(old, new), "learner.py", "exec"), namespace)
    return namespace


def at(code, function):
    """Where a learner made by ``broken`` raised: " (line N of learner.py, in function)", N the line of ``code`` in the
    reference module (exec'd source has no lines to quote)."""
    lines = inspect.getsource(reference).splitlines()
    (number,) = [i + 1 for i, line in enumerate(lines) if code in line]
    return f" (line {number} of learner.py, in {function})"


def found(report):
    """The mismatches as {(function, gradient, t)}."""
    return {(m.function, m.gradient, m.t) for m in report.mismatches}


# ---------------------------------------------------------------- the reference, proven


@pytest.mark.parametrize("namespace", [reference, ts.course], ids=["reference", "ts.course"])
def test_the_reference_passes_its_own_checker(namespace):
    report = check(namespace)
    assert report.ok and report.mismatches == [] and report.not_checked == []
    assert [f.function for f in report.functions] == NAMES
    assert str(report).splitlines()[-1] == "all 10 function(s) match the engine"


def test_a_function_that_returns_a_tensor_of_this_library_is_compared_by_its_values():
    """A learner's function that returns a ts.Tensor requiring grad: NumPy may not take it, and check raised
    RuntimeError where it had compared it (a review)."""
    functions = {name: getattr(reference, name) for name in NAMES}

    def rnn_cell_forward(xt, a_prev, parameters):
        a_next, yt_pred, cache = reference.rnn_cell_forward(xt, a_prev, parameters)
        return ts.Tensor(a_next, requires_grad=True), yt_pred, cache

    report = check({**functions, "rnn_cell_forward": rnn_cell_forward})
    assert report.ok, str(report)


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_agrees_with_the_engine(name):
    """Other sizes and inputs than the checker's: every output and gradient to 1e-10."""
    function = BY_NAME[name]
    inputs = Inputs.random(seed=3, n_x=4, n_a=3, n_y=3, m=5, T_x=6)
    forward = getattr(reference, function.forward or name)
    *outputs, cache = forward(*inputs.forward_arguments(function))
    if function.is_backward:
        received = getattr(reference, name)(*inputs.upstream(function), cache)
    else:
        received = dict(zip(function.outputs, outputs))
    expected = inputs.answers(function)
    assert list(received) == list(function.outputs)
    for key in function.outputs:
        np.testing.assert_allclose(received[key], expected[key], rtol=1e-10, atol=1e-12, err_msg=f"{name}: {key}")


def numerical_gradient(loss, array, eps=1e-6):
    """Central differences of loss() with respect to every entry of ``array`` (changed in place, then restored)."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        gradient[index] = (plus - minus) / (2 * eps)
    return gradient


@pytest.mark.parametrize("name", BACKWARD)
def test_the_reference_backward_matches_finite_differences(name):
    """For L = Σ da ⊙ a (+ Σ dc_next ⊙ c_next), every gradient the backward returns is ∂L/∂(its input or weight)."""
    function = BY_NAME[name]
    inputs = Inputs.random(seed=5, n_x=2, n_a=3, n_y=2, m=2, T_x=3)
    arguments = tuple(np.copy(a) if isinstance(a, np.ndarray) else {k: np.copy(v) for k, v in a.items()}
                      for a in inputs.forward_arguments(function))
    forward, backward = getattr(reference, function.forward), getattr(reference, name)
    upstream = inputs.upstream(function)

    def loss():
        outputs = forward(*arguments)  # (a_next, c_next, ...) or (a, ...) pair with (da_next, dc_next) or (da,)
        return sum(np.sum(seed * output) for seed, output in zip(upstream, outputs))

    position = {"dxt": 0, "dx": 0, "da_prev": 1, "da0": 1, "dc_prev": 2}  # in (xt, a_prev, c_prev, parameters)
    gradients = backward(*upstream, forward(*arguments)[-1])
    for key in function.outputs:
        array = arguments[position[key]] if key in position else arguments[-1][key[1:]]  # dWf -> parameters["Wf"]
        np.testing.assert_allclose(gradients[key], numerical_gradient(loss, array), rtol=1e-6, atol=1e-8, err_msg=f"{name}: {key}")


def test_course_gradients_needs_a_backward_first():
    cell = nn.load_course_parameters(nn.RNNCell(2, 3).double(), {"Wax": np.ones((3, 2)), "Waa": np.ones((3, 3)), "ba": np.ones((3, 1))})
    with pytest.raises(ValueError, match=r"course_gradients\(RNNCell\): the cell has no gradients; .* then call backward"):
        nn.course_gradients(cell)


# ---------------------------------------------------------------- broken learners: exactly what is wrong, nothing else

ALL_RNN = ("dx", "da0", "dWax", "dWaa", "dba")
BUGS = {
    # a learner whose loop leaves out step 2's contribution to dWaa: the issue's example
    "dWaa misses step 2": (
        'dWaa += gradients["dWaa"]', 'dWaa += gradients["dWaa"] if t != 1 else 0',
        {("rnn_backward", "dWaa", 2)}),
    # overwriting instead of adding: right while only step 1 has a gradient
    "dWax overwritten": (
        'dWax += gradients["dWax"]', 'dWax = gradients["dWax"]',
        {("rnn_backward", "dWax", 2)}),
    # the loop stops before the last step: everything from t = 4 (T_x) on
    "backward skips the last step": (
        "for t in reversed(range(T_x)):\n        gradients = rnn_cell_backward",
        "for t in reversed(range(T_x - 1)):\n        gradients = rnn_cell_backward",
        {("rnn_backward", key, 4) for key in ALL_RNN}),
    # tanh' written as 1 − tanh: every gradient of the cell, and of the sequence from its first step
    "dtanh with the wrong formula": (
        "dtanh = (1 - a_next ** 2) * da_next", "dtanh = (1 - a_next) * da_next",
        {("rnn_cell_backward", key, None) for key in ("dxt", "da_prev", "dWax", "dWaa", "dba")}
        | {("rnn_backward", key, 1) for key in ALL_RNN}),
    # da_prev without tanh': da0 is wrong at once; the rest from t = 2, the first gradient that crosses a step
    "da_prev misses a term": (
        '"da_prev": Waa.T @ dtanh,', '"da_prev": Waa.T @ da_next,',
        {("rnn_cell_backward", "da_prev", None), ("rnn_backward", "da0", 1)}
        | {("rnn_backward", key, 2) for key in ("dx", "dWax", "dWaa", "dba")}),
    # dc_prev without Γf. c⟨0⟩ = 0, so step 1 adds nothing to dWf, dbf; and Γo's gradient does not read dc, so dWo,
    # dbo go wrong only once a wrong dc has changed da_prev, one step earlier: both from t = 3
    "lstm dc_prev without ft": (
        '"dc_prev": dc * ft,', '"dc_prev": dc,',
        {("lstm_cell_backward", "dc_prev", None)}
        | {("lstm_backward", key, 2) for key in ("dx", "da0", "dWi", "dbi", "dWc", "dbc")}
        | {("lstm_backward", key, 3) for key in ("dWf", "dbf", "dWo", "dbo")}),
    # the GRU's da_prev without the path through Γr ⊙ a⟨t−1⟩
    "gru da_prev misses the reset path": (
        '"da_prev": da_next * (1 - ut) + d_reset_a * rt + dconcat[:n_a],', '"da_prev": da_next * (1 - ut) + dconcat[:n_a],',
        {("gru_cell_backward", "da_prev", None)}),
    "gru dWc without the reset gate": (
        '"dWc": dcct @ np.concatenate([rt * a_prev, xt]).T,', '"dWc": dcct @ np.concatenate([a_prev, xt]).T,',
        {("gru_cell_backward", "dWc", None)}),
    # a forward bug: its outputs differ, and the backward functions fed its caches differ too
    "lstm forward without the update gate": (
        "c_next = ft * c_prev + it * cct", "c_next = ft * c_prev + cct",
        {("lstm_cell_forward", key, None) for key in ("a_next", "c_next", "yt_pred")}
        | {("lstm_cell_backward", key, None) for key in BY_NAME["lstm_cell_backward"].outputs}
        | {("lstm_forward", key, 1) for key in ("a", "y", "c")}
        | {("lstm_backward", key, 1) for key in ("dx", "da0", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")}
        | {("lstm_backward", key, 2) for key in ("dWf", "dbf")}),  # c⟨0⟩ = 0 again
    # a forward bug that shows from t = 2: the recurrence reads a⟨0⟩ at every step
    "rnn_forward always starts from a0": (
        "a_next, yt_pred, cache = rnn_cell_forward(x[:, :, t], a_next, parameters)",
        "a_next, yt_pred, cache = rnn_cell_forward(x[:, :, t], a0, parameters)",
        {("rnn_forward", "a", 2), ("rnn_forward", "y_pred", 2)} | {("rnn_backward", key, 2) for key in ALL_RNN}),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_bug_flags_exactly_what_it_breaks(bug):
    old, new, expected = BUGS[bug]
    report = check(broken(old, new))
    assert not report.ok
    assert found(report) == expected
    for m in report.mismatches:
        assert m.max_diff > 0 and m.note == "" and m.expected.shape == np.shape(m.received)


def test_the_issue_example_reads_as_the_issue_says():
    old, new, _ = BUGS["dWaa misses step 2"]
    report = check(broken(old, new))
    assert "rnn_backward: dWaa differs from t = 2 on, by up to 2.47; dx, da0, dWax, dba match" in str(report).splitlines()
    (m,) = report.mismatches
    assert (m.function, m.gradient, m.t) == ("rnn_backward", "dWaa", 2) and f"{m.max_diff:.3g}" == "2.47"
    assert m.max_diff == np.abs(m.received - m.expected).max()  # the figure the line gives
    inputs = Inputs.random()  # what they returned is the engine's dWaa without step 2's term
    *_, (caches, x) = reference.rnn_forward(*inputs.forward_arguments(BY_NAME["rnn_forward"]))
    from_step_3 = reference.rnn_backward(inputs.da[:, :, 2:], (caches[2:], x[:, :, 2:]))["da0"]  # what step 3 sends back to a⟨2⟩
    step_2 = reference.rnn_cell_backward(inputs.da[:, :, 1] + from_step_3, caches[1])["dWaa"]
    np.testing.assert_array_equal(m.expected, inputs.answers(BY_NAME["rnn_backward"])["dWaa"])
    np.testing.assert_allclose(m.received, m.expected - step_2, rtol=1e-10)
    assert m.max_diff == pytest.approx(np.abs(step_2).max(), rel=1e-10)


VERDICTS = {
    # no keepdims: a shape; rnn_backward then cannot add it up
    "dba without keepdims": ('"dba": dtanh.sum(axis=1, keepdims=True),', '"dba": dtanh.sum(axis=1),', [
        "rnn_cell_backward: dba has shape (5,), expected (5, 1); dxt, da_prev, dWax, dWaa match",
        "rnn_backward: raised ValueError: non-broadcastable output operand with shape (5,1) doesn't match the broadcast shape (5,5)"
        + at('dba += gradients["dba"]', "rnn_backward"),
    ]),
    # the forward raises: its backward is checked with the reference's caches
    "a wrong key": ('n_y, n_a = parameters["Wya"].shape', 'n_y, n_a = parameters["Wy"].shape', [
        "rnn_forward: raised KeyError: 'Wy'" + at('n_y, n_a = parameters["Wya"].shape', "rnn_forward")
        + "; the dicts it was given hold Waa, Wax, Wya, ba, by: did you mean 'Wya'?",
        "rnn_backward: dx, da0, dWax, dWaa, dba match (given the caches of ts.course.rnn_forward: your rnn_forward failed)",
    ]),
    "a missing key": ('return {"dx": dx, "da0": da_prevt, **sums}', 'return {"dx": dx, **sums}', [
        "lstm_backward: da0 is missing; dx, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo match",
    ]),
    "no yt_pred": ("return a_next, yt_pred, cache\n\n\ndef gru_cell_backward", "return a_next, cache\n\n\ndef gru_cell_backward", [
        "gru_cell_forward: returned a tuple of 2 items; the course's gru_cell_forward returns (a_next, yt_pred, cache)",
        "gru_cell_backward: dxt, da_prev, dWu, dbu, dWr, dbr, dWc, dbc match "
        "(given the cache of ts.course.gru_cell_forward: your gru_cell_forward failed)",
    ]),
    "NaN": ('"dc_prev": dc * ft,', '"dc_prev": dc * ft * np.nan,', [
        "lstm_cell_backward: dc_prev differs, with NaN or inf; dxt, da_prev, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo match",
        "lstm_backward: dx, da0, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo differ from t = 1 on, with NaN or inf",  # 0 · NaN is NaN
    ]),
    "a forward bug": ("c_next = ft * c_prev + it * cct", "c_next = ft * c_prev + cct", [
        "lstm_cell_forward: a_next, c_next, yt_pred differ, by up to 0.979",
        "lstm_cell_backward: dxt, da_prev, dc_prev, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo differ, by up to 0.365 "
        "(through the cache of your lstm_cell_forward, which differs; given ts.course's cache, your lstm_cell_backward matches)",
    ]),
}


def test_a_backward_fed_a_wrong_cache_is_also_checked_on_the_right_one():
    learner = broken("c_next = ft * c_prev + it * cct", "c_next = ft * c_prev + cct")  # the forward's bug
    right_forward = broken("c_next = ft * c_prev + it * cct", "c_next = ft * c_prev + it * cct")
    learner["lstm_cell_backward"] = broken('"dc_prev": dc * ft,', '"dc_prev": dc * ft * 2,')["lstm_cell_backward"]
    lines = str(check({name: learner[name] for name in ("lstm_cell_forward", "lstm_cell_backward")})).splitlines()
    assert any(line.startswith("lstm_cell_backward: ") and line.endswith(
        "(through the cache of your lstm_cell_forward, which differs; given ts.course's cache, it differs too: a bug of "
        "its own)") for line in lines)
    report = check({"lstm_cell_forward": right_forward["lstm_cell_forward"], "lstm_cell_backward": learner["lstm_cell_backward"]})
    assert found(report) == {("lstm_cell_backward", "dc_prev", None)}  # on its own, only its own bug shows

    def fussy_backward(da_next, dc_next, cache):  # fails on any cache but the learner's own forward's
        if cache[-1].get("fussy") is None:
            raise KeyError("fussy")
        return learner["lstm_cell_backward"](da_next, dc_next, cache)

    def fussy_forward(xt, a_prev, c_prev, parameters):
        a_next, c_next, yt_pred, cache = learner["lstm_cell_forward"](xt, a_prev, c_prev, parameters)
        return a_next, c_next, yt_pred, (*cache[:-1], {**cache[-1], "fussy": True})

    lines = str(check({"lstm_cell_forward": fussy_forward, "lstm_cell_backward": fussy_backward})).splitlines()
    assert any(line.startswith("lstm_cell_backward: ") and line.endswith(
        "which differs; given ts.course's cache, raised KeyError: 'fussy' (line "
        f"{inspect.getsourcelines(fussy_backward)[1] + 2} of test_course.py, in fussy_backward: raise KeyError(\"fussy\")); "
        "the dicts it was given hold Wc, Wf, Wi, Wo, Wy, bc, bf, bi, bo, by)")  # no close match: no guess
        for line in lines), lines


@pytest.mark.parametrize("bug", list(VERDICTS))
def test_verdicts_name_the_problem(bug):
    old, new, expected = VERDICTS[bug]
    report = check(broken(old, new))
    lines = str(report).splitlines()
    assert [line for line in expected if line not in lines] == []
    assert lines[-1].endswith("function(s) differ from the engine")
    for m in report.mismatches:
        if m.note.startswith("has shape"):
            assert m.max_diff is None and m.received.shape == (5,) and m.expected.shape == (5, 1)
        if bug == "NaN" and m.gradient == "dc_prev":
            assert m.max_diff == math.inf


def test_failures_are_records_not_exceptions():
    def exploding(da, caches):
        raise ZeroDivisionError("division by zero")

    def quitting(x, a0, parameters):
        sys.exit("done")

    report = check({"rnn_backward": exploding, "rnn_forward": 3, "lstm_backward": lambda da, caches: [1, 2], "lstm_forward": quitting})
    exploding_at = f" (line {inspect.getsourcelines(exploding)[1] + 1} of test_course.py, in exploding: raise ZeroDivisionError(\"division by zero\"))"
    quitting_at = f" (line {inspect.getsourcelines(quitting)[1] + 1} of test_course.py, in quitting: sys.exit(\"done\"))"
    assert [(m.function, m.gradient, m.t, m.expected, m.received, m.max_diff, m.note) for m in report.mismatches] == [
        ("rnn_forward", None, None, None, None, None, "is an int, not a function"),
        ("rnn_backward", None, None, None, None, None, "raised ZeroDivisionError: division by zero" + exploding_at),
        ("lstm_forward", None, None, None, None, None, "raised SystemExit: done" + quitting_at),
        ("lstm_backward", None, None, None, None, None,
         "returned a list of 2 items; the course's lstm_backward returns a dict with dx, da0, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo"),
    ]
    assert [line for line in str(report).splitlines() if not line.startswith("lstm_forward")][:3] == [
        "rnn_forward: is an int, not a function",
        "rnn_backward: raised ZeroDivisionError: division by zero" + exploding_at + " "
        "(given the caches of ts.course.rnn_forward: your rnn_forward is not a function)",
        "lstm_backward: returned a list of 2 items; the course's lstm_backward returns a dict with dx, da0, dWf, dbf, dWi, "
        "dbi, dWc, dbc, dWo, dbo (given the caches of ts.course.lstm_forward: your lstm_forward failed)",
    ]


# ---------------------------------------------------------------- what check accepts, and what it leaves alone


def test_a_dict_with_some_functions():
    report = check({"rnn_cell_backward": reference.rnn_cell_backward, "lstm_forward": reference.lstm_forward})
    assert report.ok and [f.function for f in report.functions] == ["rnn_cell_backward", "lstm_forward"]
    assert report.not_checked == [n for n in NAMES if n not in ("rnn_cell_backward", "lstm_forward")]
    assert str(report) == (
        "rnn_cell_backward: dxt, da_prev, dWax, dWaa, dba match "
        "(given the cache of ts.course.rnn_cell_forward: rnn_cell_forward is not defined here)\n"
        "lstm_forward: a, y, c match\n"
        "not checked (not defined): rnn_cell_forward, rnn_forward, rnn_backward, lstm_cell_forward, lstm_cell_backward, "
        "lstm_backward, gru_cell_forward, gru_cell_backward\n"
        "all 2 function(s) match the engine"
    )
    assert str(check({})).splitlines()[-1] == "none of the course's functions is defined here: nothing to check"
    assert not check({}).ok  # nothing checked is no pass: an autograder must not pass an empty file


def test_a_misspelt_function_is_named_with_the_one_it_resembles():
    report = check({"rnn_cell_foward": lambda *args: None, "helper": lambda: None, "lstm_forward": reference.lstm_forward})
    assert report.near_misses == {"rnn_cell_foward": "rnn_cell_forward"}
    assert "did you mean: rnn_cell_foward -> rnn_cell_forward? (the checker finds a function by its course name)" in str(report)
    assert report.ok  # what it checked matches; the hint does not fail it


LEARNER_FILE = '''
import numpy as np
from course_helpers import softmax   # a helper beside the file, as the notebook's rnn_utils

print("testing my functions...")     # what the file prints is not shown


def rnn_cell_forward(xt, a_prev, parameters):
    a_next = np.tanh(parameters["Waa"] @ a_prev + parameters["Wax"] @ xt + parameters["ba"])
    return a_next, softmax(parameters["Wya"] @ a_next + parameters["by"]), (a_next, a_prev, xt, parameters)
'''


@pytest.fixture
def learner_file(tmp_path):
    (tmp_path / "course_helpers.py").write_text("from tinygrad_seq.course.reference import softmax\n")
    path = tmp_path / "my_rnn_utils.py"
    path.write_text(LEARNER_FILE)
    return path


def test_an_error_names_the_learners_line_not_a_librarys(tmp_path, monkeypatch):
    # A learner's folder whose name starts like this library's, and a package of theirs installed in the user's
    # site-packages (pip install --user): the line named is the learner's call, not the package's raise.
    folder = tmp_path / "tinygrad_seq_homework"
    folder.mkdir()
    user_site = tmp_path / "user-site"
    user_site.mkdir()
    (user_site / "installed_helpers.py").write_text("def stack(items):\n    raise ValueError('stack: nothing to stack')\n")
    monkeypatch.syspath_prepend(str(user_site))
    monkeypatch.setattr("site.getusersitepackages", lambda: str(user_site))
    (folder / "rnn.py").write_text(
        "import numpy as np\nfrom installed_helpers import stack\n\n\n"
        "def rnn_cell_forward(xt, a_prev, parameters):\n    return stack([])\n\n\n"
        "def rnn_forward(x, a0, parameters):\n    return np.concatenate([])\n")
    (folder / "turtle.py").write_text("def walk(parameters):\n    return parameters['Wxx']\n")  # named as a standard module
    monkeypatch.syspath_prepend(str(folder))
    (folder / "lstm.py").write_text("import turtle\n\n\ndef lstm_cell_forward(xt, a_prev, c_prev, parameters):\n"
                                    "    return turtle.walk(parameters)\n")
    monkeypatch.delitem(sys.modules, "turtle", raising=False)  # the learner's turtle.py, which their lstm.py imports
    lstm_notes = {m.function: m.note for m in check(folder / "lstm.py").mismatches}
    assert lstm_notes["lstm_cell_forward"] == ("raised KeyError: 'Wxx' (line 2 of turtle.py, in walk: return parameters['Wxx']); "
                                               "the dicts it was given hold Wc, Wf, Wi, Wo, Wy, bc, bf, bi, bo, by")
    notes = {m.function: m.note for m in check(folder / "rnn.py").mismatches}
    assert notes["rnn_cell_forward"] == ("raised ValueError: stack: nothing to stack "
                                         "(line 6 of rnn.py, in rnn_cell_forward: return stack([]))")
    assert notes["rnn_forward"].endswith("(line 10 of rnn.py, in rnn_forward: return np.concatenate([]))")  # not NumPy's


def test_a_path_is_imported_without_leaving_traces(learner_file, capsys):
    path_before, modules_before = list(sys.path), set(sys.modules)
    for namespace in (learner_file, str(learner_file)):
        report = check(namespace)
        assert report.ok and [f.function for f in report.functions] == ["rnn_cell_forward"]
    assert sys.path == path_before and set(sys.modules) == modules_before
    assert capsys.readouterr().out == ""
    learner_file.write_text(LEARNER_FILE.replace("np.tanh(", "np.sinh("))  # edited: the new code is checked
    assert found(check(learner_file)) == {("rnn_cell_forward", "a_next", None), ("rnn_cell_forward", "yt_pred", None)}


@pytest.mark.parametrize("content, message", [
    ("def rnn_cell_forward(xt, a_prev, parameters):\n    return (\n",
     r"cannot import .*learner\.py: SyntaxError: '\(' was never closed \(learner\.py, line 2\)"),
    ("import numpy as np\n\nrnn_cell_forward = np.tanh(undefined)\n",
     r"cannot import .*learner\.py: NameError: name 'undefined' is not defined \(line 3\)"),
    ("from public_tests import *\n", r"cannot import .*learner\.py: ModuleNotFoundError: No module named 'public_tests' \(line 1\)"),
    ("import sys\nsys.exit(1)\n", r"cannot import .*learner\.py: SystemExit: 1 \(line 2\)"),
])
def test_a_file_that_cannot_be_imported(tmp_path, content, message):
    path = tmp_path / "learner.py"
    path.write_text(content)
    with pytest.raises(CourseImportError, match=message):
        check(path)


def test_bad_namespaces(tmp_path):
    with pytest.raises(CourseImportError, match=r"nope\.py: no such file"):
        check(tmp_path / "nope.py")
    with pytest.raises(CourseImportError, match="is a folder"):
        check(tmp_path)
    (tmp_path / "notes.ipynb").write_text("{}")
    with pytest.raises(CourseImportError, match=r"notes\.ipynb: not a \.py file"):
        check(tmp_path / "notes.ipynb")
    with pytest.raises(TypeError, match="give a module, a dict of functions, or the path of a .py file; got int"):
        check(42)


def test_check_leaves_the_learners_inputs_random_stream_and_settings_alone():
    def changes_its_inputs(da, caches):
        gradients = reference.rnn_backward(da, caches)
        da *= 0  # in place: the next call must still get the real da
        caches[0][0][3]["Waa"] *= 0
        return gradients

    ts.manual_seed(0)
    expected = ts.randn(3).numpy()
    ts.manual_seed(0)
    with ts.no_grad():
        report = check({"rnn_backward": changes_its_inputs, "rnn_forward": reference.rnn_forward})
    assert report.ok
    np.testing.assert_array_equal(ts.randn(3).numpy(), expected)
    assert ts.is_grad_enabled() and ts.get_backend().name == "numpy"


# ---------------------------------------------------------------- the command


def test_check_course_command(learner_file, tmp_path, capsys):
    assert cli(["check-course", str(learner_file)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "rnn_cell_forward: a_next, yt_pred match" and "not checked" in out

    wrong = tmp_path / "wrong.py"
    wrong.write_text(inspect.getsource(reference).replace('dWaa += gradients["dWaa"]', 'dWaa += gradients["dWaa"] if t != 1 else 0'))
    assert cli(["check-course", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "rnn_backward: dWaa differs from t = 2 on, by up to 2.47; dx, da0, dWax, dba match" in out.splitlines()
    assert out.splitlines()[-1] == "1 of 10 function(s) differ from the engine"

    (tmp_path / "broken.py").write_text("def rnn_forward(:\n")
    assert cli(["check-course", str(tmp_path / "broken.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tinygrad-seq check-course: error: cannot import {tmp_path / 'broken.py'}: SyntaxError")
