"""Optimizers and clipping: 50-step trajectories against PyTorch in float64, state dicts, errors."""
import contextlib
import math
import re
import types

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, optim
from tinygrad_seq.nn import functional as F

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)

STEPS = 50

OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "sgd_nesterov_decay": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd_dampening": ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_decay_betas": ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    "adagrad": ("Adagrad", dict(lr=0.1)),
    "adagrad_decay": ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop_momentum_centered": ("RMSprop", dict(lr=0.005, momentum=0.8, centered=True, weight_decay=0.01)),
}
CLIPPING = {"none": None, "norm": ("norm", 0.5, 2.0), "norm_inf": ("norm", 0.1, math.inf), "value": ("value", 0.05)}


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((16, 4)), rng.integers(0, 3, 16)


def make_mlp():
    ts.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def clip(module, clipping, clip_norm, clip_value):
    if clipping is None:
        return None
    if clipping[0] == "value":
        clip_value(module.parameters(), clipping[1])
        return None
    return float(clip_norm(module.parameters(), clipping[1], norm_type=clipping[2]))


def train_ours(opt_name, options, clipping, steps=STEPS, model=None, opt=None):
    x, y = data()
    model = model or make_mlp()
    opt = opt or getattr(optim, opt_name)(model.parameters(), **options)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(ts.Tensor(x)), y).backward()
        norm = clip(model, clipping, optim.clip_grad_norm_, optim.clip_grad_value_)
        opt.step()
        trajectory.append(([p.numpy().copy() for p in model.parameters()], norm))
    return trajectory


def train_torch(torch, opt_name, options, clipping, initial_state):
    x, y = data()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    model.load_state_dict({k: torch.tensor(v) for k, v in initial_state.items()})
    opt = getattr(torch.optim, opt_name)(model.parameters(), **options)
    trajectory = []
    for _ in range(STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y)).backward()
        norm = clip(model, clipping, torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_)
        opt.step()
        trajectory.append(([p.detach().numpy().copy() for p in model.parameters()], norm))
    return trajectory


@pytest.mark.parametrize("clipping", CLIPPING, ids=list(CLIPPING))
@pytest.mark.parametrize("case", OPTIMIZERS, ids=list(OPTIMIZERS))
def test_trajectory_matches_torch(case, clipping):
    torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")
    opt_name, options = OPTIMIZERS[case]
    ours = train_ours(opt_name, options, CLIPPING[clipping])
    theirs = train_torch(torch, opt_name, options, CLIPPING[clipping], make_mlp().state_dict())
    for step, ((our_params, our_norm), (their_params, their_norm)) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(our_params, their_params)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step}, parameter {i}")
        if our_norm is not None:
            assert our_norm == pytest.approx(their_norm, rel=1e-12)
    assert not np.allclose(ours[0][0][0], ours[-1][0][0])  # training moved the weights


@pytest.mark.parametrize("case", ["sgd_momentum", "adam_decay_betas", "adagrad_decay", "rmsprop_momentum_centered"])
def test_state_dict_round_trip_resumes_exactly(case):
    opt_name, options = OPTIMIZERS[case]
    straight = train_ours(opt_name, options, None, steps=20)

    model = make_mlp()
    opt = getattr(optim, opt_name)(model.parameters(), **options)
    train_ours(opt_name, options, None, steps=10, model=model, opt=opt)
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    for values in saved_opt["state"].values():  # host copies, safe to keep
        assert all(not hasattr(v, "shape") or type(v) is np.ndarray or np.ndim(v) == 0 for v in values.values())

    resumed_model = make_mlp()
    resumed_model.load_state_dict(saved_model)
    resumed_opt = getattr(optim, opt_name)(resumed_model.parameters(), **{**options, "lr": 123.0})
    resumed_opt.load_state_dict(saved_opt)
    assert resumed_opt.param_groups[0]["lr"] == options["lr"]
    resumed = train_ours(opt_name, options, None, steps=10, model=resumed_model, opt=resumed_opt)
    for a, b in zip(straight[-1][0], resumed[-1][0]):
        np.testing.assert_array_equal(a, b)


def test_param_groups_have_their_own_hyperparameters():
    model = make_mlp()
    opt = optim.SGD([{"params": model[0].parameters(), "lr": 0.0}, {"params": model[2].parameters()}], lr=0.1)
    before = [p.numpy().copy() for p in model.parameters()]
    x, y = data()
    F.cross_entropy(model(ts.Tensor(x)), y).backward()
    opt.step()
    after = [p.numpy() for p in model.parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(before[:2], after[:2]))  # lr 0
    assert not np.array_equal(before[2], after[2])
    assert "group 0: 2 parameters, lr=0.0" in repr(opt)


def test_step_skips_parameters_without_grad_and_zero_grad_clears():
    a, b = nn.Parameter(ts.ones(2)), nn.Parameter(ts.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.tolist() == [1.0, 1.0] and a.tolist() != [1.0, 1.0] and b not in opt.state
    opt.zero_grad()
    assert a.grad is None


def test_optimizer_steps_do_not_reallocate_parameters():
    model = make_mlp()
    buffers = [p.data for p in model.parameters()]
    train_ours("Adam", dict(lr=0.01, weight_decay=0.1), None, steps=3, model=model)
    assert all(p.data is b for p, b in zip(model.parameters(), buffers))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: optim.SGD([]), ValueError, r"SGD: got an empty parameter list"),
        (lambda p: optim.Adam(make_mlp()), TypeError, r"Adam: got the module Sequential itself; pass its parameters: "
                                                       r"Adam\(model.parameters\(\), ...\)"),
        (lambda p: optim.Adam(make_mlp().parameters), TypeError,  # the parentheses forgotten: was "'method' object is not iterable"
         r"^Adam: got the function parameters itself, not the parameters it gives; call it: Adam\(model\.parameters\(\), \.\.\.\)$"),
        (lambda p: optim.SGD([{"params": make_mlp().parameters}]), TypeError, r"^SGD: got the function parameters itself"),
        (lambda p: optim.SGD(p, lr=-1), ValueError, r"^SGD: lr must be a finite number >= 0; got -1$"),
        (lambda p: optim.SGD(p, nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"^Adam: betas must be two numbers in \[0, 1\).*; got \(0.9, 1.0\)$"),
        # each was accepted, then trained the wrong way, poisoned the weights, or failed at the first step
        (lambda p: optim.Adam([{"params": p, "lr": -1.0}]), ValueError, r"^Adam: lr must be a finite number >= 0; got -1.0$"),
        (lambda p: optim.SGD([{"params": p[:2]}, {"params": p[2:], "lr": float("nan")}]), ValueError,
         r"^SGD: lr must be a finite number >= 0 \(parameter group 1\); got nan$"),
        (lambda p: optim.Adam(p, lr="0.1"), ValueError, r"^Adam: lr must be a finite number >= 0; got '0.1'$"),
        (lambda p: optim.Adam(p, betas=(0.9, 0.9, 0.9)), ValueError, r"betas must be two numbers .*; got \(0.9, 0.9, 0.9\)$"),
        (lambda p: optim.Adam(p, betas=0.9), ValueError, r"betas must be two numbers .*; got 0.9$"),
        (lambda p: optim.RMSprop(p, momentum=float("inf")), ValueError, r"^RMSprop: momentum must be a finite number >= 0; got inf$"),
        (lambda p: optim.SGD([{"lr": 0.1}]), ValueError, r"^SGD: parameter group 0 has no \"params\""),
        (lambda p: optim.SGD([{"params": p[:2]}, p[2]]), TypeError, r"^SGD: takes tensors, or groups .*not both in one list"),
        (lambda p: optim.Adam([ts.ones(2)]), TypeError, r"^Adam: none of the 1 parameters requires grad, so nothing would train"),
        (lambda p: optim.Adam([p[0], 2.0]), TypeError, r"^Adam: every parameter must be a Tensor; got float$"),
        (lambda p: optim.SGD([p[0] * 2]), ValueError, r"^SGD: a parameter must be a leaf tensor, one no op made; got one of shape "
                                                      r"\(8, 4\) made by Mul\. .*w = w\.detach\(\)\.requires_grad_\(\)$"),
        (lambda p: optim.Adam(p + p), ValueError, r"a parameter appears twice"),
        (lambda p: optim.Adam([{"params": p, "momentum": 0.9}]), TypeError, r"unknown hyperparameters \['momentum'\]"),
        (lambda p: optim.Adagrad(p, eps=-1), ValueError, r"^Adagrad: eps must be a finite number >= 0; got -1$"),
        (lambda p: optim.RMSprop(p, alpha=-1), ValueError, r"^RMSprop: alpha must be a finite number >= 0; got -1$"),
    ],
)
def test_optimizer_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(list(make_mlp().parameters()))


def test_a_learning_rate_a_schedule_sets_wrong_is_refused_at_the_next_step():
    """training.md's schedule is a line in the loop that changes param_groups[i]["lr"]; set to -0.1 it trained the
    wrong way without a word (the loss climbed 1.308 -> 1.358 -> 1.418)."""
    params = grads_of([3.0, 4.0])
    opt = optim.Adam(params, lr=0.1)
    opt.param_groups[0]["lr"] = -0.1
    with pytest.raises(ValueError, match=r"^Adam: lr must be a finite number >= 0 \(parameter group 0, at step\(\)\); got -0\.1$"):
        opt.step()
    assert params[0].tolist() == [0.0, 0.0] and not opt.state  # nothing moved
    opt.param_groups[0]["lr"] = 0.05
    opt.step()
    assert params[0].tolist() != [0.0, 0.0]


def test_load_state_dict_mismatch():
    opt = optim.Adam(make_mlp().parameters())
    other = optim.Adam(list(make_mlp().parameters())[:2])
    with pytest.raises(ValueError, match=r"the saved groups hold \[2\] parameters, this optimizer's \[4\]"):
        opt.load_state_dict(other.state_dict())


@pytest.mark.parametrize("case", ["sgd_momentum", "adam_decay_betas", "adagrad_decay", "rmsprop_momentum_centered"])
def test_a_state_dict_is_copied_both_ways(case):
    opt_name, options = OPTIMIZERS[case]

    def trained(steps, opt=None, params=None):
        params = params or [nn.Parameter(ts.Tensor(np.ones(3))), nn.Parameter(ts.Tensor(np.float64(0.5)))]  # shape () too
        opt = opt or getattr(optim, opt_name)(params, **options)
        for _ in range(steps):
            opt.zero_grad()
            sum((p * 0.3).sum() for p in params).backward()
            opt.step()
        return opt, params

    opt, params = trained(2)
    saved = opt.state_dict()
    frozen = {i: {k: np.array(v, copy=True) for k, v in values.items()} for i, values in saved["state"].items()}
    trained(3, opt, params)  # the optimizer's steps leave what it handed out alone, the (,)-shaped state too
    for i, values in saved["state"].items():
        for k, v in values.items():
            np.testing.assert_array_equal(v, frozen[i][k], err_msg=f"parameter {i}, {k}")
    first, first_params = trained(0)
    second, second_params = trained(0)
    first.load_state_dict(saved)
    second.load_state_dict(saved)
    trained(2, first, first_params)  # a loaded optimizer's steps change neither the dict nor the other one
    for i, values in saved["state"].items():
        for k, v in values.items():
            np.testing.assert_array_equal(v, frozen[i][k], err_msg=f"parameter {i}, {k}")
            np.testing.assert_array_equal(ts.Tensor.wrap(second.state[second_params[i]][k]).numpy(), frozen[i][k])


def test_a_state_dict_of_another_optimizer_or_parameter_is_refused_before_anything_changes():
    params = list(make_mlp().parameters())
    adam = optim.Adam(params, lr=0.01)
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    sum((p * 1.0).sum() for p in params).backward()
    adam.step(), sgd.step()
    before = {p: {k: ts.Tensor.wrap(v).numpy().copy() for k, v in s.items()} for p, s in adam.state.items()}
    with pytest.raises(ValueError, match=r"^Adam.load_state_dict: the saved groups have hyperparameters \['dampening', 'momentum', "
                                         r"'nesterov'\] that Adam does not take, and lack its \['betas', 'eps'\]: a state dict of "
                                         r"another optimizer\?"):
        adam.load_state_dict(sgd.state_dict())
    foreign = adam.state_dict()
    foreign["state"][1]["momentum_buffer"] = foreign["state"][1]["exp_avg"]
    with pytest.raises(ValueError, match=r"^Adam.load_state_dict: parameter 1 has state \['momentum_buffer'\] that Adam does not keep"):
        adam.load_state_dict(foreign)
    for index in (-1, 4, "x", True):
        wrong = adam.state_dict()
        wrong["state"] = {index: wrong["state"][0]}
        with pytest.raises(ValueError, match=rf"^Adam.load_state_dict: state of parameter {index!r}: its index must be an int from 0 to 3"):
            adam.load_state_dict(wrong)
    poisoned = adam.state_dict()
    poisoned["param_groups"][0]["lr"] = float("nan")  # a NaN saved by a diverged run would poison the weights at the next step
    with pytest.raises(ValueError, match=r"^Adam: lr must be a finite number >= 0 in saved parameter group 0 \(load_state_dict\); got nan$"):
        adam.load_state_dict(poisoned)
    assert adam.param_groups[0]["lr"] == 0.01 and "momentum" not in adam.param_groups[0]
    for p, s in adam.state.items():  # nothing changed
        for k, v in s.items():
            np.testing.assert_array_equal(ts.Tensor.wrap(v).numpy(), before[p][k])
    counted = adam.state_dict()
    counted["state"][0]["step"] = np.array(7)  # a count that came back from a file as a 0-d array
    adam.load_state_dict(counted)
    assert adam.state[params[0]]["step"] == 7 and type(adam.state[params[0]]["step"]) is int


@pytest.mark.parametrize("optimizer, option, value", [
    ("Adam", "decoupled_weight_decay", True), ("Adam", "maximize", True), ("Adam", "amsgrad", True),
    ("SGD", "maximize", True), ("Adagrad", "maximize", True), ("RMSprop", "maximize", True),
])
def test_a_pytorch_option_that_changes_the_update_is_refused_where_the_class_lacks_it(optimizer, option, value):
    """A state dict of PyTorch's AdamW (decoupled_weight_decay=True) or of a maximize=True run loaded into an
    optimizer without the option would resume with other updates: refused, naming it; the implementation-only
    options PyTorch writes (foreach, fused, ...), and these options at their neutral values, load."""
    params = list(make_mlp().parameters())
    opt = getattr(optim, optimizer)(params, lr=0.01)
    pytorch_like = opt.state_dict()
    pytorch_like["param_groups"][0].update(foreach=None, fused=None, differentiable=False, capturable=False, maximize=False,
                                           initial_lr=0.01)
    opt.load_state_dict(pytorch_like)
    assert opt.param_groups[0]["foreach"] is None and opt.param_groups[0]["initial_lr"] == 0.01
    pytorch_like["param_groups"][0].update({option: value, "weight_decay": 0.01})  # AdamW's rule matters with a decay
    with pytest.raises(ValueError, match=rf"^{optimizer}.load_state_dict: saved parameter group 0 has {option}=True, PyTorch's "
                                         rf"option that .*; {optimizer} here has no such option and steps as with {option}=False"):
        opt.load_state_dict(pytorch_like)
    assert opt.param_groups[0].get(option, False) is False


def test_pytorchs_adamw_state_dict_is_refused_by_adam():
    torch = pytest.importorskip("torch")
    weight = torch.nn.Parameter(torch.zeros(2))
    saved = torch.optim.AdamW([weight], lr=0.05, weight_decay=0.5).state_dict()
    with pytest.raises(ValueError, match=r"decoupled_weight_decay=True, PyTorch's option that decays the weights apart from the "
                                         r"gradient \(AdamW's rule\)"):
        optim.Adam([nn.Parameter(ts.zeros(2))]).load_state_dict(saved)
    optim.Adam([nn.Parameter(ts.zeros(2))]).load_state_dict(torch.optim.Adam([weight], lr=0.05).state_dict())  # Adam's own: loads
    optim.Adam([nn.Parameter(ts.zeros(2))]).load_state_dict(  # AdamW without weight decay steps as Adam: loads
        torch.optim.AdamW([weight], lr=0.05, weight_decay=0.0).state_dict())


@pytest.mark.parametrize("optimizer", ["Adam", "Adagrad", "RMSprop"])
def test_a_state_dict_that_would_fail_later_is_refused_and_changes_nothing(optimizer):
    params = list(make_mlp().parameters())
    options = {"RMSprop": dict(momentum=0.9, centered=True)}.get(optimizer, {})
    opt = getattr(optim, optimizer)(params, lr=0.01, **options)
    sum((p * 1.0).sum() for p in params).backward()
    opt.step()
    before = opt.state_dict()
    first, second = (next(k for k in before["state"][0] if k != "step"), sorted(before["state"][0])[-1])

    def changed(change):
        saved = opt.state_dict()
        change(saved)
        return saved

    where = f"^{optimizer}.load_state_dict: "
    cases = [  # parameter 0's state is fine in each, so a load that changed things as it went would have changed it
        (lambda d: d["state"][1].update({first: np.array(["x"] * params[1].size).reshape(params[1].shape)}),
         rf"{where}state '{first}' of parameter 1 is an array of <U1, not of real numbers"),
        (lambda d: d["state"][1].update(step=-1), rf"{where}state 'step' of parameter 1 is -1: a step count is a whole number >= 0"),
        (lambda d: d["state"][1].update(step=1.5), rf"{where}state 'step' of parameter 1 is 1.5: a step count is a whole number"),
        (lambda d: d["state"][1].update(step=np.array(-3.0)), rf"{where}state 'step' of parameter 1 is array\(-3\.\)"),
        (lambda d: d["state"][1].pop(second), rf"{where}the state of parameter 1 lacks \['{second}'\], which {optimizer}'s next step reads"),
        (lambda d: d["state"].update({1: None}), rf"{where}the state of parameter 1 is a NoneType, not a dict"),
        (lambda d: d.pop("param_groups"), rf"{where}expects what state_dict\(\) returns, a dict of \"state\" \(a dict\) and "
                                          r"\"param_groups\" \(a list\); got \['state'\]"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(changed(lambda d: (d["state"][0].update({k: v * 0 for k, v in d["state"][0].items()}), change(d))))
        after = opt.state_dict()
        for i, values in before["state"].items():
            for k, v in values.items():
                np.testing.assert_array_equal(after["state"][i][k], v, err_msg=f"{message}: parameter {i}, {k}")
    opt.step()  # and it still trains


def test_a_count_in_any_whole_type_a_tuple_of_groups_and_a_subclass_keeping_less_still_load():
    params = list(make_mlp().parameters())
    adam = optim.Adam(params, lr=0.01)
    sum((p * 1.0).sum() for p in params).backward()
    adam.step()
    for count in (1.0, np.float32(1), np.array(1.0), np.int64(1)):  # PyTorch keeps its step as a float tensor
        saved = adam.state_dict()
        saved["state"][0]["step"] = count
        saved["param_groups"] = tuple(saved["param_groups"])
        adam.load_state_dict(types.MappingProxyType(saved))
        assert adam.state[params[0]]["step"] == 1 and type(adam.state[params[0]]["step"]) is int

    class Momentum(optim.Adam):  # keeps only the first moment: not held to what Adam's update reads
        state_names = ("step", "exp_avg")

        def update(self, param, grad, state, group):
            state.setdefault("step", 0)
            state.setdefault("exp_avg", param.backend.xp.zeros_like(param.data))
            state["step"] += 1
            state["exp_avg"] += grad
            param.data -= group["lr"] * state["exp_avg"]

    momentum = Momentum(params, lr=0.01)
    momentum.step()
    momentum.load_state_dict(momentum.state_dict())
    assert sorted(momentum.state[params[0]]) == ["exp_avg", "step"]


def test_a_pytorch_optimizers_state_is_refused_with_the_conversion():
    torch = pytest.importorskip("torch")
    params = list(make_mlp().parameters())
    adam = optim.Adam(params, lr=0.01)
    sum((p * 1.0).sum() for p in params).backward()
    adam.step()
    saved = adam.state_dict()
    saved["state"][0]["exp_avg"] = torch.from_numpy(saved["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match=r"^Adam.load_state_dict: state 'exp_avg' of parameter 0 is a torch.Tensor: an optimizer's "
                                         r"state holds NumPy arrays and numbers, as state_dict\(\) gives them \(a PyTorch tensor: \.numpy\(\)\)"):
        adam.load_state_dict(saved)


def test_a_subclass_a_scheduler_and_a_statistic_of_their_own_still_load():
    params = list(make_mlp().parameters())

    class AMSGrad(optim.Adam):  # keeps more than Adam: not held to Adam's state_names
        def update(self, param, grad, state, group):
            super().update(param, grad, state, group)
            state["max_exp_avg_sq"] = state["exp_avg_sq"].copy()
            state["grad_norm"] = param.backend.xp.asarray(float(np.linalg.norm(to_host(grad))))  # 0-d, float64

    opt = AMSGrad(params, lr=0.01)
    sum((p * 1.0).sum() for p in params).backward()
    opt.step()
    saved = opt.state_dict()
    saved["param_groups"][0]["initial_lr"] = 0.01  # what a scheduler adds to a group
    resumed = AMSGrad(params, lr=0.5)
    resumed.load_state_dict(saved)
    state = resumed.state[params[0]]
    assert sorted(state) == ["exp_avg", "exp_avg_sq", "grad_norm", "max_exp_avg_sq", "step"]
    assert to_host(state["grad_norm"]).dtype == np.float64 and to_host(state["grad_norm"]).shape == ()  # a statistic keeps its dtype
    assert resumed.param_groups[0]["lr"] == 0.01 and resumed.param_groups[0]["initial_lr"] == 0.01


# ---------------------------------------------------------------- clipping


def grads_of(*arrays):
    params = [nn.Parameter(ts.Tensor(np.zeros_like(a))) for a in arrays]
    for p, a in zip(params, arrays):
        p.grad = np.array(a, dtype=np.float64)
    return params


@pytest.mark.parametrize("scale", [1e3, 1e-8, 0.2], ids=["large", "tiny", "below threshold"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(scale, norm_type):
    torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, 4)) * scale, rng.standard_normal(5) * scale]
    params = grads_of(*arrays)
    torch_params = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    for p, a in zip(torch_params, arrays):
        p.grad = torch.tensor(a)
    ours = optim.clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(torch_params, max_norm=1.0, norm_type=norm_type)
    assert isinstance(ours, ts.Tensor) and ours.shape == () and ours.dtype == np.float64
    assert float(ours) == pytest.approx(theirs.item(), rel=1e-13)
    for p, t in zip(params, torch_params):
        np.testing.assert_allclose(to_host(p.grad), t.grad.numpy(), rtol=1e-13)


def test_clip_grad_norm_semantics():
    params = grads_of([3.0, 4.0], [0.0])
    params.append(nn.Parameter(ts.zeros(2)))  # no grad: skipped
    norm = optim.clip_grad_norm_(params, max_norm=1.0)
    assert float(norm) == 5.0 and f"{norm:.3f}" == "5.000" and norm.requires_grad is False
    np.testing.assert_allclose(to_host(params[0].grad), [3 / (5 + 1e-6), 4 / (5 + 1e-6)])
    below = grads_of([0.3, 0.4])
    assert float(optim.clip_grad_norm_(below[0], max_norm=1.0)) == pytest.approx(0.5)
    np.testing.assert_array_equal(to_host(below[0].grad), [0.3, 0.4])  # a coefficient above 1 is clamped to 1
    assert float(optim.clip_grad_norm_([nn.Parameter(ts.zeros(1))], 1.0)) == 0.0
    assert float(optim.clip_grad_norm_(grads_of([-7.0, 2.0], [3.0]), 10.0, norm_type=math.inf)) == 7.0
    with pytest.raises(RuntimeError, match=r"total norm of order 2.0 of the gradients is nan.*detect_anomaly"):
        optim.clip_grad_norm_(grads_of([np.nan, 1.0]), 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    params = grads_of([-3.0, 0.5, 2.0])
    optim.clip_grad_value_(params, 1.0)
    assert params[0].grad.tolist() == [-1.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="clip_value must be a number >= 0"):
        optim.clip_grad_value_(params, -1.0)
    with pytest.raises(ValueError, match=r"clip_value must be a number >= 0; got nan"):
        optim.clip_grad_value_(params, float("nan"))


@pytest.mark.parametrize("clip", [optim.clip_grad_norm_, optim.clip_grad_value_], ids=lambda f: f.__name__)
def test_clipping_given_the_model_or_its_method_names_the_fix(clip):
    """Before: "'Linear' object is not iterable" and "'method' object is not iterable"."""
    model = make_mlp()
    name = clip.__name__
    with pytest.raises(TypeError, match=rf"^{name}: got the module Sequential itself; pass its parameters: {name}\(model\.parameters\(\), \.\.\.\)$"):
        clip(model, 1.0)
    with pytest.raises(TypeError, match=rf"^{name}: got the function parameters itself, not the parameters it gives; call it"):
        clip(model.parameters, 1.0)
    with pytest.raises(TypeError, match=rf"^{name}: takes tensors \(model\.parameters\(\)\); got a ndarray among them$"):
        clip([np.ones(2)], 1.0)


def test_clip_grad_norm_names_a_norm_type_that_is_not_a_number():
    with pytest.raises(ValueError, match=r"^clip_grad_norm_: norm_type must be a number \(2\.0, 1\.0, or math\.inf .*; got 'fro'$"):
        optim.clip_grad_norm_(grads_of([3.0, 4.0]), 1.0, norm_type="fro")


@pytest.mark.parametrize("max_norm", [0, -1.0, float("nan"), True, "1"])
def test_a_max_norm_that_would_not_clip_but_zero_flip_or_poison_the_gradients_is_refused(max_norm):
    """Before: 0 zeroed every gradient, -1 turned them around, NaN made them NaN (and "1" was a ufunc error)."""
    params = grads_of([3.0, 4.0])
    with pytest.raises(ValueError, match=r"^clip_grad_norm_: max_norm must be a number > 0 \(inf: only measure the norm\); "
                                         rf"got {re.escape(repr(max_norm))}\. To train without clipping, leave the call out$"):
        optim.clip_grad_norm_(params, max_norm)
    assert params[0].grad.tolist() == [3.0, 4.0]  # untouched
    assert float(optim.clip_grad_norm_(params, math.inf)) == 5.0 and params[0].grad.tolist() == [3.0, 4.0]  # the norm, unclipped
    on_host = ts.get_backend().name == "numpy"  # a host array or tensor on a device backend fails in the arithmetic, as before
    for fine in (np.float32(10.0), 10) + ((np.array(10.0), ts.Tensor(10.0)) if on_host else ()):  # used as given
        assert float(optim.clip_grad_norm_(params, fine)) == 5.0
    from tinygrad_seq.models import TrainConfig, TrainingError

    with pytest.raises(TrainingError, match=r"clip=True \(must be > 0, or None or 0 for no clipping\)"):
        TrainConfig(data="x.txt", clip=True)  # was accepted, then failed at the first step
    for field in ("lr", "dropout", "val_fraction"):  # True is 1 to Python: a learning rate of 1, dropout of 1 ...
        with pytest.raises(TrainingError, match=rf"{field}=True \(must be"):
            TrainConfig(data="x.txt", **{field: True})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adams_compiled_loop_is_its_numpy_update_bit_for_bit(dtype, monkeypatch):
    """optim/loops.py runs Adam on NumPy arrays (the PyTorch comparisons above go through it); inside
    ts.without_numba() the NumPy update runs. The two agree exactly, weight decay included."""
    pytest.importorskip("numba", reason="the compiled loops need numba (a core dependency: pip install -e .)")
    from tinygrad_seq.optim import adam

    rng = np.random.default_rng(3)
    start = [rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal(7).astype(dtype)]
    ran_loop = []
    loops_for = adam._compiled_loops
    monkeypatch.setattr(adam, "_compiled_loops", lambda *arrays: ran_loop.append(loops_for(*arrays) is not None) or loops_for(*arrays))
    runs = []
    for compiled in (True, False):
        params = [nn.Parameter(ts.Tensor(a.copy())) for a in start]
        opt = optim.Adam(params, lr=0.03, betas=(0.85, 0.995), eps=1e-6, weight_decay=0.01)
        for step in range(6):
            for p in params:
                p.grad = p.backend.asarray(np.random.default_rng(step).standard_normal(p.shape).astype(dtype))
            with contextlib.nullcontext() if compiled else ts.without_numba():
                opt.step()
        runs.append(([to_host(p.data) for p in params], [to_host(opt.state[p]["exp_avg_sq"]) for p in params]))
    on_numpy = ts.get_backend().name == "numpy"
    assert ran_loop == [on_numpy] * 12 + [False] * 12  # 2 parameters × 6 steps with the loop (on NumPy), then without
    (ours, our_v), (numpy_update, numpy_v) = runs
    for a, b, va, vb, first in zip(ours, numpy_update, our_v, numpy_v, start):
        assert a.dtype == dtype and np.array_equal(a, b) and np.array_equal(va, vb) and not np.array_equal(a, first)
    if on_numpy:
        a = np.zeros((4, 6), dtype)
        assert adam._compiled_loops(a, a.copy()) is not None
        assert adam._compiled_loops(a, a[:, :3]) is None  # a strided gradient: the NumPy update runs
        assert adam._compiled_loops(a.astype(np.float16)) is None
        with ts.without_numba():
            assert adam._compiled_loops(a) is None


def test_clip_grad_norm_within_the_limit_leaves_the_gradients_untouched():
    params = grads_of([0.3, 0.4], [[1e-3]])
    on_numpy = ts.get_backend().name == "numpy"
    if on_numpy:  # read-only: a multiply by the scale 1.0 would raise; on a device it runs (asking would wait)
        for p in params:
            p.grad.flags.writeable = False
    norm = optim.clip_grad_norm_(params, max_norm=1.0)
    assert float(norm) == pytest.approx(math.sqrt(0.25 + 1e-6), rel=1e-15)
    np.testing.assert_array_equal(to_host(params[0].grad), [0.3, 0.4])
    if on_numpy:
        with pytest.raises(ValueError, match="read-only"):
            optim.clip_grad_norm_(params, max_norm=0.1)  # a scale below 1 does write


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "Adagrad", "RMSprop"])
def test_a_frozen_parameter_is_kept_and_left_alone_until_unfrozen(optimizer):
    """As PyTorch: model.parameters() with a frozen one (requires_grad=False, fine-tuning) is accepted; the frozen
    parameter gets no gradient, so steps leave it, and once unfrozen it trains."""
    model = make_mlp()
    frozen = model[0].weight
    frozen.requires_grad = False
    opt = getattr(optim, optimizer)(model.parameters(), lr=0.1)
    before = {name: p.numpy().copy() for name, p in model.named_parameters()}
    (model(ts.ones(2, 4, dtype="float64")) ** 2).sum().backward()
    opt.step()
    changed = {name for name, p in model.named_parameters() if not np.array_equal(p.numpy(), before[name])}
    assert frozen.grad is None and changed == set(before) - {"0.weight"}
    frozen.requires_grad = True
    opt.zero_grad()
    (model(ts.ones(2, 4, dtype="float64")) ** 2).sum().backward()
    opt.step()
    assert not np.array_equal(frozen.numpy(), before["0.weight"])
