"""No exercise passes by wrapping the package's own implementation (the leak guard of ``exercises/guard.py``).

Each wrapper below computes the right answer from the package (or from autograd, for a gradient):
it agrees with the model answer when called outside a check, and every check must refuse it.
"""

import math

import pytest
import torch

from attnflex_lab import adapt, exercises, functional, metrics, modules, ops, positional
from attnflex_lab.analysis import explain, robustness
from attnflex_lab.elasticity import metrics as elasticity_metrics
from attnflex_lab.elasticity.shifts import DimensionAttention, ShiftConfig
from attnflex_lab.exercises import ExerciseError, check, guard
from attnflex_lab.kernels import flash
from attnflex_lab.perf import flops as perf
from attnflex_lab.tasks import timeseries
from attnflex_lab.viz import images as viz_images


# Lessons whose every exercise must carry a guard and appear below (every lesson that has exercises).
@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: a second thread only adds contention (05.training_loop: 50x slower on a busy machine)."""


GUARDED_LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")
NO_PACKAGE_TWIN = {"05.split_heads": "the package splits heads inline in MultiHeadAttention.forward",
                   "05.training_loop": "fit wants a Dataset and a TrainConfig; the guard still switches it off",
                   "03.feature_map_to_regions": "RegionFeatures.forward flattens inline and adds p_t; lesson 03 "
                                                "shows only its output above the exercise",
                   "07.triton_online_update": "Triton loads in its own process: triton_interpreter_checks.py sees "
                                              "run_update refuse triton_flash.online_update",
                   "12.head_contribution": "the package never forms one head's projection term: ablate_heads "
                                           "zeroes the head's slice before the projection"}


def _grad(fn, wrt, upstream):
    wrt = [t.clone().requires_grad_() for t in wrt]
    return torch.autograd.grad(fn(*wrt), wrt, upstream)


def _entropy_slope_by_autograd(z, tau):
    def entropy(t):
        return [-(torch.softmax(row / t, -1) * torch.log_softmax(row / t, -1)).sum() for row in z]
    one = torch.tensor(1.0, dtype=z.dtype)
    return torch.stack([_grad(lambda t, b=b: entropy(t)[b], [torch.tensor(tau, dtype=z.dtype)], one)[0]
                        for b in range(len(z))])


def _block_by_module(x, block, mask):
    return block(x, mask)


LEAKS = {
    "00.softmax_temperature": lambda s, tau: functional.masked_softmax(s / tau),
    "01.scaled_dot_scores": lambda q, k: functional.scaled_dot_scores(q, k),
    "01.masked_softmax": lambda s, m: functional.masked_softmax(s, m),
    "01.attention_pool": lambda e, w: functional.attention_pool(e, w),
    "01.nadaraya_watson": lambda *args: functional.nadaraya_watson(*args)[0],
    "01.entropy_slope": lambda z, tau: _entropy_slope_by_autograd(z, tau),
    "02.softmax_backward": lambda p, g: _grad(lambda x: ops.softmax(x), [p.log()], g)[0],
    "02.attention_dv": lambda w, g: _grad(lambda v: w @ v, [torch.zeros(*w.shape[:-2], w.shape[-1], g.shape[-1],
                                                                        dtype=w.dtype)], g)[0],
    "02.attention_dq": lambda q, k, v, g, s: _grad(lambda q: ops.attention(q, k, v, scale=s)[0], [q], g)[0],
    "02.attention_dk": lambda q, k, v, g, s: _grad(lambda k: ops.attention(q, k, v, scale=s)[0], [k], g)[0],
    "02.additive_backward": lambda q, k, wq, wk, va, g: _grad(
        lambda q, k, va: functional.additive_scores(q, k, wq, wk, va), [q, k, va], g),
    "03.confusion_counts": lambda y, p, n: torch.from_numpy(viz_images.confusion_matrix(y, p, n)),
    "03.pooled_logit_grad": lambda e, w_a, W, k: _grad(
        lambda s: (torch.softmax(s, -1).unsqueeze(-1) * e).sum(1) @ W.T, [e @ w_a],
        torch.nn.functional.one_hot(k, W.shape[0]).to(e.dtype))[0],
    "04.additive_attention_weights": lambda u, h, wq, wk, va, mask: functional.masked_softmax(
        functional.additive_scores(u.unsqueeze(1), h, wq, wk, va).squeeze(1), mask),
    "04.alignment_accuracy": lambda w, t, tol: torch.tensor(metrics.alignment_accuracy(w, t, tolerance=tol)),
    "04.alignment_position_grad": lambda u, h, wq, wk, va, mask: _grad(
        lambda u: (functional.masked_softmax(functional.additive_scores(u.unsqueeze(1), h, wq, wk, va).squeeze(1),
                                             mask) * torch.arange(h.shape[1], dtype=u.dtype)).sum(-1),
        [u], torch.ones(len(u), dtype=u.dtype))[0],
    "05.causal_mask": lambda T: modules.causal_mask(T),
    "05.sinusoidal_encoding": lambda T, C: positional.SinusoidalPositionalEncoding(C, max_len=T).pe,
    "05.mha_forward": lambda x, wqkv, bqkv, wo, bo, n, mask: torch.no_grad()(_mha_by_module)(
        x, wqkv, bqkv, wo, bo, n, mask),
    "05.pre_ln_block": _block_by_module,
    "05.layernorm_backward": lambda x, gamma, g, eps: _grad(
        lambda x, gamma, beta: torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps),
        [x, gamma, torch.zeros_like(gamma)], g),
    "06.flops_per_token": lambda *args: perf.flops_per_token(*args),
    "06.mfu": lambda tps, fpt, peak: perf.mfu(tps, fpt, peak * 1e12),
    "07.online_softmax_update": lambda m, l, x: flash.online_softmax_update(m, l, x),
    "07.block_dv": lambda q, k, lse, g, s: _tile_by_flash(q, k, k.new_zeros(*k.shape[:-1], g.shape[-1]), lse,
                                                          torch.zeros_like(g), g, s)[2],
    "07.tile_backward": lambda *args: _tile_by_flash(*args),
    "08.switch_cost": lambda acc, s, w: torch.tensor(elasticity_metrics.switch_cost(acc.numpy(), s, w),
                                                     dtype=acc.dtype),
    "08.attention_shift": lambda p, q: torch.tensor(elasticity_metrics.attention_shift(p.numpy(), q.numpy()),
                                                    dtype=p.dtype),
    "08.gate_gradient": lambda cards, V, g, tau, G: _gate_grad_by_module(cards, V, g, tau, G),
    "09.expected_calibration_error": lambda p, y, n: torch.tensor(
        metrics.expected_calibration_error(p, y, n_bins=n), dtype=p.dtype),
    "09.project_l2": lambda delta, eps: robustness.project_l2(delta, eps),
    "10.lora_forward": lambda x, w0, b0, a, b, alpha: _lora_by_module(x, w0, b0, a, b, alpha),
    "10.merge_lora": lambda w0, a, b, alpha: _merged_by_module(w0, a, b, alpha),
    "10.prefix_decomposition": lambda *args: adapt.prefix_decomposition(*args),
    "11.target_attention": lambda h, c, m: _target_attention_by_package(h, c, m),
    "11.candidate_gradient": lambda h, c, m, g: _grad(
        lambda c: _target_attention_by_package(h, c, m)[0], [c], g)[0],
    "11.mase": lambda f, a, train, m: torch.tensor(timeseries.mase(f.numpy(), a.numpy(), train.numpy(), m),
                                                 dtype=f.dtype),
    "12.integrated_gradients": lambda f, x, base, steps: explain.integrated_gradients(
        lambda z: f(z)[:, None], x, torch.zeros(len(x), dtype=torch.long), baseline=base, steps=steps),
    "12.ig_quadratic": lambda A, b, x, base: explain.integrated_gradients(   # exact: ∇f is linear on the path
        lambda z: (((z @ A) * z).sum(-1) + z @ b)[:, None], x, torch.zeros(len(x), dtype=torch.long),
        baseline=base, steps=1),
}


def _gate_grad_by_module(cards, n_values, gate, tau, grad_features):
    """Autograd through the package's own DimensionAttention.features."""
    cfg = ShiftConfig(family="dimension", n_dims=len(gate), n_values=n_values, temperature=tau)
    model = DimensionAttention(cfg).double()
    with torch.no_grad():
        model.gate.copy_(gate)
    (model.features(cards).double() * grad_features).sum().backward()
    return model.gate.grad


def _target_attention_by_package(history, candidate, mask):
    pooled, weights = functional.attention(candidate[:, None], history, history, mask=mask[:, None])
    return pooled[:, 0], weights[:, 0]                      # (B, 1, d) -> (B, d), (B, 1, L) -> (B, L)


def _tile_by_flash(q_i, k_j, v_j, lse_i, out_i, grad_out_i, scale):
    """One tile of flash's own backward (``_BackwardState.tile``), as (dQ_I, dK_J, dV_J)."""
    bq, bk = q_i.shape[-2], k_j.shape[-2]
    state = flash._BackwardState(q=q_i * scale, k=k_j, v=v_j, grad_out=grad_out_i, lse=lse_i[..., None],
                                 rho=(grad_out_i * out_i).sum(-1, keepdim=True), mask=None, causal=False, T=bq, S=bk)
    grads = [torch.zeros_like(t) for t in (q_i, k_j, v_j)]
    state.tile(0, bq, 0, bk, False, *grads)
    return grads[0] * scale, grads[1], grads[2]


def _lora_qkv(w0, b0, a, b, alpha):
    """The package's LoRAQKV holding W0, A, B in its q slice, zero-padded to a square width."""
    (c_out, c_in), r = w0.shape, a.shape[0]
    width = max(c_out, c_in, r)
    base = torch.nn.Linear(width, 3 * width, dtype=w0.dtype)
    layer = adapt.LoRAQKV(base, adapt.LoRAConfig(rank=r, alpha=alpha, targets=("q",)))
    with torch.no_grad():
        for t in (base.weight, base.bias, layer.lora_A["q"], layer.lora_B["q"]):
            t.zero_()
        base.weight[:c_out, :c_in], base.bias[:c_out] = w0, b0
        layer.lora_A["q"][:, :c_in], layer.lora_B["q"][:c_out] = a, b
    return layer, width


@torch.no_grad()
def _lora_by_module(x, w0, b0, a, b, alpha):
    layer, width = _lora_qkv(w0, b0, a, b, alpha)
    return layer(torch.nn.functional.pad(x, (0, width - x.shape[-1])))[:, :w0.shape[0]]


def _merged_by_module(w0, a, b, alpha):
    layer, _ = _lora_qkv(w0, torch.zeros(w0.shape[0], dtype=w0.dtype), a, b, alpha)
    layer.merge()
    return layer.base.weight[:w0.shape[0], :w0.shape[1]].detach().clone()


def _mha_by_module(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask):
    mha = modules.MultiHeadAttention(x.shape[-1], n_heads, backend="functional")
    for param, value in ((mha.qkv.weight, w_qkv), (mha.qkv.bias, b_qkv), (mha.proj.weight, w_o),
                         (mha.proj.bias, b_o)):
        param.copy_(value)
    return mha(x, mask)


def _agrees(got, expected):
    if isinstance(expected, (tuple, list)):
        return all(_agrees(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(expected, float):
        return math.isclose(got, expected, rel_tol=1e-9)
    return got.shape == expected.shape and torch.allclose(got.to(expected.dtype), expected, atol=1e-5, rtol=1e-5)


def _owned():
    return [ex for ex in exercises.all_exercises() if ex.id.split(".")[0] in GUARDED_LESSONS]


def test_every_exercise_of_the_guarded_lessons_has_a_leak_wrapper_and_a_guard():
    ids = {ex.id for ex in _owned()}
    assert ids == set(LEAKS) | set(NO_PACKAGE_TWIN)
    unguarded = [ex.id for ex in _owned() if ex.id in LEAKS and not (ex.guards or ex.no_autograd)]
    assert not unguarded, f"exercises without a guard: {unguarded}"


@pytest.mark.parametrize("exercise_id", sorted(LEAKS))
def test_a_wrapper_around_the_package_is_refused(exercise_id):
    ex = exercises.get(exercise_id)
    args = ex.make_inputs(torch.Generator().manual_seed(3))
    assert _agrees(LEAKS[exercise_id](*args), ex.solution(*args)), "the wrapper should be a right answer"
    with pytest.raises(ExerciseError, match="package's own implementation|autograd is off"):
        check(exercise_id, LEAKS[exercise_id])
    assert _agrees(LEAKS[exercise_id](*args), ex.solution(*args)), "the guard must be undone after the check"


def test_an_earlier_from_import_is_switched_off_too():
    """The function's code is swapped, so a name bound before the check cannot escape the guard."""
    from attnflex_lab.functional import masked_softmax as bound_earlier

    with pytest.raises(ExerciseError, match="package's own implementation"):
        check("01.masked_softmax", lambda s, m: bound_earlier(s, m))
    assert bound_earlier(torch.zeros(1, 2)).sum() == 1


def test_the_guard_is_undone_when_the_learner_code_raises():
    with pytest.raises(ZeroDivisionError), guard.switched_off(("attnflex_lab.functional:masked_softmax",)):
        raise ZeroDivisionError
    torch.testing.assert_close(functional.masked_softmax(torch.zeros(1, 2)), torch.full((1, 2), 0.5))


def test_a_guard_must_name_a_function():
    with pytest.raises(ValueError, match="module:attribute"):
        guard.resolve("attnflex_lab.functional.masked_softmax")
    with pytest.raises(ValueError, match="does not name a Python function"):
        guard.resolve("attnflex_lab.modules:BACKENDS")
