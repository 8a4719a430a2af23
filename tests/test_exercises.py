"""Every registered exercise: its model answer agrees with an independent reference (autograd, the
package's modules, or a formula written another way), a planted wrong answer does not, a stub is
'not attempted'."""

import math

import pytest
import torch

from attnflex_lab import exercises, functional
from attnflex_lab.exercises import ExerciseError, check, describe_difference, show_solution
from attnflex_lab.modules import MultiHeadAttention, SinusoidalPositionalEncoding, causal_mask
from attnflex_lab.perf import flops as perf


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: a second thread only adds contention (05.training_loop: 50x slower on a busy machine)."""


ALL = exercises.all_exercises()
F64 = torch.float64


# --- independent references: none of them calls the model answer's code ----------------------

def _softmax_backward_by_autograd(probs, grad_probs):
    logits = probs.log().requires_grad_()          # softmax(log p) = p, as each row sums to 1
    (grad,) = torch.autograd.grad(logits.softmax(-1), logits, grad_probs)
    return grad


def _dv_by_autograd(weights, grad_out):
    v = torch.zeros(*weights.shape[:-2], weights.shape[-1], grad_out.shape[-1], dtype=weights.dtype,
                    requires_grad=True)            # (..., S, Dv); dV does not depend on V's values
    (grad,) = torch.autograd.grad(weights @ v, v, grad_out)
    return grad


def _dq_by_autograd(q, k, v, grad_out, scale):
    q = q.clone().requires_grad_()
    out, _ = functional.attention(q, k, v, scale=scale)   # the autograd reference
    (grad,) = torch.autograd.grad(out, q, grad_out)
    return grad


def _dk_by_autograd(q, k, v, grad_out, scale):
    k = k.clone().requires_grad_()
    out, _ = functional.attention(q, k, v, scale=scale)
    (grad,) = torch.autograd.grad(out, k, grad_out)
    return grad


def _additive_by_autograd(q, k, w_q, w_k, v_a, grad_scores):
    q, k, v_a = (t.clone().requires_grad_() for t in (q, k, v_a))
    scores = functional.additive_scores(q, k, w_q, w_k, v_a)   # (B, T, S)
    return torch.autograd.grad(scores, (q, k, v_a), grad_scores)


def _additive_without_tanh_derivative(q, k, w_q, w_k, v_a, grad_scores):
    """The slip of dropping tanh's derivative (1 − h²): right shapes, wrong values."""
    hidden = torch.tanh((q @ w_q.T).unsqueeze(-2) + (k @ w_k.T).unsqueeze(-3))  # (B, T, S, A)
    grad_pre = grad_scores.unsqueeze(-1) * v_a                                   # (B, T, S, A)
    return (grad_pre.sum(-2) @ w_q, grad_pre.sum(-3) @ w_k,
            (grad_scores.unsqueeze(-1) * hidden).sum((0, 1, 2)))


def _layernorm_by_autograd(x, gamma, grad_out, eps):
    x, gamma = x.clone().requires_grad_(), gamma.clone().requires_grad_()
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps)
    return torch.autograd.grad(y, (x, gamma, beta), grad_out)


def _layernorm_sigma_held_constant(x, gamma, grad_out, eps):
    """The slip of treating σ as a constant: the x̂ ⊙ mean(ĝ ⊙ x̂) term is missing."""
    sigma = (x.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
    x_hat = (x - x.mean(-1, keepdim=True)) / sigma
    g_hat = grad_out * gamma
    return (g_hat - g_hat.mean(-1, keepdim=True)) / sigma, (grad_out * x_hat).sum((0, 1)), grad_out.sum((0, 1))


def _entropy_slope_by_autograd(z, tau):
    tau_leaf = torch.tensor(tau, dtype=z.dtype, requires_grad=True)
    alpha = torch.softmax(z / tau_leaf, dim=-1)                         # (B, S)
    entropy = -(alpha * alpha.log()).sum(-1)                            # (B,)
    upstream = torch.zeros_like(entropy)
    return torch.stack([torch.autograd.grad(entropy, tau_leaf, upstream.index_fill(0, torch.tensor([b]), 1.0),
                                            retain_graph=True)[0] for b in range(len(entropy))])


def _split_heads_by_slicing(x, n_heads):
    B, T, C = x.shape
    width = C // n_heads
    return torch.stack([x[:, :, h * width:(h + 1) * width] for h in range(n_heads)], dim=1)  # (B, H, T, Dh)


def _mha_by_module(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask):
    """The weights copied into ``modules.MultiHeadAttention`` (reference backend), run on x."""
    mha = MultiHeadAttention(x.shape[-1], n_heads, backend="functional")
    with torch.no_grad():
        for param, value in ((mha.qkv.weight, w_qkv), (mha.qkv.bias, b_qkv), (mha.proj.weight, w_o),
                             (mha.proj.bias, b_o)):
            param.copy_(value)
        return mha(x, mask)


def _post_ln(x, block, mask):
    """The original (post-LN) block: normalise after the residual add."""
    x = block.ln1(x + block.attn(x, mask))
    return block.ln2(x + block.mlp(x))


def _sinusoid_by_formula(T, d_model):
    """PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(same), in Python floats; also the module."""
    table = torch.tensor([[math.sin(t / 10000 ** (c / d_model)) if c % 2 == 0
                           else math.cos(t / 10000 ** ((c - 1) / d_model)) for c in range(d_model)]
                          for t in range(T)], dtype=torch.float32)
    module = SinusoidalPositionalEncoding(d_model, max_len=T)(torch.zeros(1, T, d_model))[0]
    torch.testing.assert_close(module, table, atol=1e-5, rtol=0)
    return table


def _flops_as_three_forward_passes(n_params, n_layers, d_model, seq_len):
    """Forward: 2 FLOPs per weight, and q·k plus the weighted sum (2·C·T each) per layer; backward
    costs twice the forward."""
    forward = 2 * n_params + n_layers * (2 * d_model * seq_len + 2 * d_model * seq_len)
    total = 3 * forward
    assert total == perf.flops_per_token(n_params, n_layers, d_model, seq_len)
    return float(total)


def _mfu_from_achieved_tflops(tokens_per_second, flops_per_tok, peak_tflops):
    achieved_tflops = tokens_per_second * flops_per_tok / 1e12
    return achieved_tflops / peak_tflops


def _regions_by_loop(fmap):
    B, d, h, w = fmap.shape
    out = torch.empty(B, h * w, d)
    for r in range(h):
        for c in range(w):
            out[:, r * w + c] = fmap[:, :, r, c]   # region r·w + c: row-major order
    return out


def _confusion_by_loop(labels, predictions, num_classes):
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for true, guess in zip(labels.tolist(), predictions.tolist(), strict=True):
        counts[true, guess] += 1
    return counts


def _additive_by_loop(s, h, w_q, w_k, v_a, mask):
    B, S, _ = h.shape
    out = torch.zeros(B, S)
    for b in range(B):
        scores = [float(v_a @ torch.tanh(w_q @ s[b] + w_k @ h[b, j])) for j in range(S)]
        kept = [j for j in range(S) if mask[b, j]]
        top = max(scores[j] for j in kept)
        total = sum(math.exp(scores[j] - top) for j in kept)
        for j in kept:
            out[b, j] = math.exp(scores[j] - top) / total
    return out


def _alignment_by_loop(weights, true_positions, tolerance):
    hits = [abs(int(weights[n, t].argmax()) - int(true_positions[n, t])) <= tolerance
            for n in range(weights.shape[0]) for t in range(weights.shape[1]) if true_positions[n, t] >= 0]
    return torch.tensor(sum(hits) / len(hits))


def _pooled_logit_grad_by_autograd(e, w_a, w, k):
    scores = (e @ w_a).requires_grad_()                                     # (B, T)
    logits = (torch.softmax(scores, -1).unsqueeze(-1) * e).sum(1) @ w.T     # (B, C)
    return torch.autograd.grad(logits.gather(1, k[:, None]).sum(), scores)[0]


def _position_grad_by_autograd(u, h, w_q, w_k, v_a, mask):
    u = u.clone().requires_grad_()
    scores = torch.tanh((u @ w_q.T).unsqueeze(1) + h @ w_k.T) @ v_a        # (B, S)
    alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)     # (B, S)
    mean_position = (alpha * torch.arange(h.shape[1], dtype=u.dtype)).sum()
    return torch.autograd.grad(mean_position, u)[0]


def _online_update_in_log_space(m, l, x_block):
    """m_new = max(m, max x); log l_new = logaddexp(m + log l, logsumexp x) − m_new (no rescale step)."""
    m_new = torch.maximum(m, x_block.max(dim=-1).values)
    log_total = torch.logaddexp(m + l.log(), torch.logsumexp(x_block, dim=-1))
    seen = torch.isfinite(m_new)                                          # False: −∞ so far (masked), l stays 0
    return m_new, torch.where(seen, torch.exp(log_total - m_new), torch.zeros_like(l))


def _triton_update_rescaled_late(m, l, z):
    m_new, l_new, alpha, p = _triton_update_in_log_space(m, l, z)
    return m_new, (l + p.sum(-1)) * alpha, alpha, p


def _triton_update_in_log_space(m, l, z):
    """The Triton update's four outputs, the sum in log space; rows −∞ so far give α = 0, p = 0."""
    m_new, l_new = _online_update_in_log_space(m, l, z)
    seen = torch.isfinite(m_new)
    alpha = torch.where(seen, torch.exp(m - m_new), torch.zeros_like(m))
    p = torch.where(seen[:, None], torch.exp(z - m_new[:, None]), torch.zeros_like(z))
    return m_new, l_new, alpha, p


def _block_dv_by_loop(q_i, k_j, lse_i, grad_out_i, scale):
    """dV[b, j] = Σ_i exp(scale · q_i·k_j − L_i) dO[b, i], one entry at a time in Python floats."""
    B, bq, _ = q_i.shape
    bk, Dv = k_j.shape[-2], grad_out_i.shape[-1]
    out = torch.zeros(B, bk, Dv, dtype=q_i.dtype)
    for b in range(B):
        for i in range(bq):
            for j in range(bk):
                p = math.exp(scale * float(q_i[b, i] @ k_j[b, j]) - float(lse_i[b, i]))
                out[b, j] += p * grad_out_i[b, i]
    return out


def _tile_by_surrogate_loss(q_i, k_j, v_j, lse_i, out_i, grad_out_i, scale):
    """Autograd of ℒ = Σ_ij P_ij (dO_i·v_j − ρ_i), lse and ρ = rowsum(dO ⊙ O) held constant: ∂ℒ/∂z = P ⊙ (dP − ρ)."""
    leaves = [t.clone().requires_grad_() for t in (q_i, k_j, v_j)]
    with torch.enable_grad():
        p = torch.exp(scale * leaves[0] @ leaves[1].transpose(-2, -1) - lse_i[..., None])
        rho = (grad_out_i * out_i).sum(-1, keepdim=True)
        loss = (p * (grad_out_i @ leaves[2].transpose(-2, -1) - rho)).sum()
        return torch.autograd.grad(loss, leaves)


def _switch_cost_by_loop(acc, switch_step, window):
    before = sum(float(acc[t]) for t in range(switch_step - window, switch_step)) / window
    after = sum(float(acc[t]) for t in range(switch_step, switch_step + window)) / window
    return torch.tensor(before - after, dtype=acc.dtype)


def _js_bits_as_two_kls(p, q):
    """JS = ½ KL(p ‖ m) + ½ KL(q ‖ m) in bits, m = (p + q)/2, terms with zero mass skipped."""
    def kl_bits(a, m):
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    values = []
    for a, c in zip(p.tolist(), q.tolist(), strict=True):
        m = [(x + y) / 2 for x, y in zip(a, c, strict=True)]
        values.append(0.5 * kl_bits(a, m) + 0.5 * kl_bits(c, m))
    return torch.tensor(sum(values) / len(values), dtype=p.dtype)


def _lora_by_merged_weight(x, w0, b0, a, b, alpha):
    """The layer with the update folded into one weight, W₀ + (α/r) B A, by einsum."""
    delta = torch.einsum("or,ri->oi", b, a) * (alpha / a.shape[0])
    return torch.nn.functional.linear(x, w0 + delta, b0)


def _merged_weight_by_probing(w0, a, b, alpha):
    """Read the merged map's matrix column by column: feed the basis vectors through the low-rank path."""
    eye = torch.eye(w0.shape[1], dtype=w0.dtype)                  # (C_in, C_in): one basis vector a row
    columns = (alpha / a.shape[0]) * (eye @ a.T) @ b.T            # (C_in, C_out): the update's columns
    return w0 + columns.T


def _target_attention_by_loop(history, candidate, mask):
    """Row by row, only the real items, with exp / sum written out."""
    pooled, weights = torch.zeros_like(candidate), torch.zeros(mask.shape, dtype=history.dtype)
    for b in range(len(history)):
        real = [j for j in range(history.shape[1]) if mask[b, j]]
        scores = [float(history[b, j] @ candidate[b]) / math.sqrt(history.shape[-1]) for j in real]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        for j, e in zip(real, exps, strict=True):
            weights[b, j] = e / sum(exps)
            pooled[b] += weights[b, j] * history[b, j]
    return pooled, weights


def _mase_by_loop(forecast, actual, train, season):
    error = sum(abs(float(f) - float(a)) for f, a in zip(forecast, actual, strict=True)) / len(actual)
    naive = [abs(float(train[t]) - float(train[t - season])) for t in range(season, len(train))]
    return torch.tensor(error / (sum(naive) / len(naive)), dtype=forecast.dtype)
def _ig_by_analytic_gradient(f, x, baseline, steps):
    """The tanh net's gradient written out, ∂f/∂x = ((1 − tanh²(x W₁)) ⊙ w₂) W₁ᵀ, summed at midpoints."""
    total = torch.zeros_like(x)
    for s in range(steps):
        point = baseline + (s + 0.5) / steps * (x - baseline)
        total += ((1 - torch.tanh(point @ f.w1) ** 2) * f.w2) @ f.w1.T
    return (x - baseline) * total / steps


def _candidate_gradient_by_autograd(history, candidate, mask, grad_u):
    """Autograd through a forward written with einsum and exp / sum (padding's exp set to 0)."""
    c = candidate.clone().requires_grad_()
    scores = torch.einsum("bld,bd->bl", history, c) / math.sqrt(history.shape[-1])
    exps = torch.where(mask, (scores - scores.max(-1, keepdim=True).values).exp(), 0.0)
    pooled = torch.einsum("bl,bld->bd", exps / exps.sum(-1, keepdim=True), history)
    (grad,) = torch.autograd.grad(pooled, c, grad_u)
    return grad


def _ig_quadratic_by_trapezoid(A, b, x, baseline):
    """Autograd's gradient at both ends of the path, averaged: the trapezoid rule is exact when the
    gradient is linear along the path, as it is for a quadratic."""
    ends = []
    for point in (baseline, x):
        point = point.clone().requires_grad_()
        (grad,) = torch.autograd.grad((((point @ A) * point).sum(-1) + point @ b).sum(), point)
        ends.append(grad)
    return (x - baseline) * (ends[0] + ends[1]) / 2


def _head_term_by_zeroing_the_others(z, w_o, head):
    """The projection of the concatenated heads with every other head set to zero."""
    only = torch.zeros_like(z)
    only[..., head, :] = z[..., head, :]
    return torch.nn.functional.linear(only.flatten(-2), w_o)
def _ece_by_sorting(probs, labels, n_bins):
    """ECE with Python numbers: each prediction's bin is ceil(conf · n_bins) − 1 (bins (lo, hi])."""
    bins = {}
    for row, label in zip(probs.tolist(), labels.tolist(), strict=True):
        conf = max(row)
        b = min(max(math.ceil(conf * n_bins) - 1, 0), n_bins - 1)
        bins.setdefault(b, []).append((conf, float(row.index(conf) == label)))
    n = len(labels)
    total = sum(len(m) / n * abs(sum(c for _, c in m) / len(m) - sum(p for p, _ in m) / len(m))
                for m in bins.values())
    return torch.tensor(total, dtype=probs.dtype)


def _l2_projection_by_multiplier(delta, eps):
    """KKT of min ‖d − δ‖² s.t. ‖d‖² ≤ ε²: d = δ / (1 + μ) with the multiplier μ = max(0, ‖δ‖/ε − 1)."""
    out = torch.empty_like(delta)
    for n in range(len(delta)):
        length = math.sqrt(float((delta[n] ** 2).sum()))
        out[n] = delta[n] / (1 + max(0.0, length / eps - 1))
    return out


def _prefix_parts_by_concatenation(q, k, v, prefix_k, prefix_v, scale):
    """Attention over [prefix; keys] read column-wise: λ is the weight on the prefix columns, and each
    part is the same concatenated softmax with the other part's columns masked out."""
    P, keys = prefix_k.shape[0], torch.cat([prefix_k.expand(len(k), -1, -1), k], dim=1)   # (B, P + S, D)
    values = torch.cat([prefix_v.expand(len(v), -1, -1), v], dim=1)                       # (B, P + S, Dv)
    scores = scale * q @ keys.transpose(-2, -1)                                            # (B, T, P + S)
    on_prefix = torch.arange(keys.shape[1]) < P
    gate = functional.masked_softmax(scores)[..., :P].sum(-1)
    prefix_out = functional.masked_softmax(scores, on_prefix) @ values
    base_out = functional.masked_softmax(scores, ~on_prefix) @ values
    return gate, prefix_out, base_out


def _prefix_gate_from_maxima(q, k, v, prefix_k, prefix_v, scale):
    """The gate from the largest score on each side, not from the log-sum-exps."""
    gate, prefix_out, base_out = _prefix_parts_by_concatenation(q, k, v, prefix_k, prefix_v, scale)
    wrong = torch.sigmoid((scale * q @ prefix_k.T).amax(-1) - (scale * q @ k.transpose(-2, -1)).amax(-1))
    return wrong, prefix_out, base_out


def _ece_unweighted(probs, labels, n_bins):
    """A plain mean over the non-empty bins: a lone prediction's bin weighs as much as a full one."""
    conf, pred = probs.max(-1)
    which = (torch.bucketize(conf, torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype)) - 1).clamp(0, n_bins - 1)
    gaps = [((pred[which == b] == labels[which == b]).to(probs.dtype).mean() - conf[which == b].mean()).abs()
            for b in range(n_bins) if (which == b).any()]
    return torch.stack(gaps).mean()


def _gate_gradient_by_autograd(cards, n_values, gate, tau, grad_features):
    g = gate.clone().requires_grad_()
    x = torch.nn.functional.one_hot(cards, n_values).to(gate.dtype) * (len(g) * torch.softmax(g / tau, -1))[:, None]
    return torch.autograd.grad((x * grad_features).sum(), g)[0]


def _gate_gradient_diagonal_only(cards, n_values, gate, tau, grad_features):
    """α_d(1 − α_d) ∂ℒ/∂α_d / τ: the softmax Jacobian's diagonal alone, as if each α_d moved by itself."""
    alpha = torch.softmax(gate / tau, -1)
    onehot = torch.nn.functional.one_hot(cards, n_values).to(gate.dtype)
    d_alpha = len(alpha) * (grad_features * onehot).sum(dim=(0, 1, 3))
    return alpha * (1 - alpha) * d_alpha / tau


REFERENCES = {
    "00.softmax_temperature": lambda s, tau: torch.softmax(s / tau, dim=-1),
    "01.scaled_dot_scores": functional.scaled_dot_scores,
    "01.masked_softmax": functional.masked_softmax,
    "01.attention_pool": functional.attention_pool,
    "01.nadaraya_watson": lambda *args: functional.nadaraya_watson(*args)[0],
    "01.entropy_slope": _entropy_slope_by_autograd,
    "02.softmax_backward": _softmax_backward_by_autograd,
    "02.attention_dv": _dv_by_autograd,
    "02.attention_dq": _dq_by_autograd,
    "02.attention_dk": _dk_by_autograd,
    "02.additive_backward": _additive_by_autograd,
    "05.layernorm_backward": _layernorm_by_autograd,
    "03.feature_map_to_regions": _regions_by_loop,
    "03.confusion_counts": _confusion_by_loop,
    "04.additive_attention_weights": _additive_by_loop,
    "04.alignment_accuracy": _alignment_by_loop,
    "03.pooled_logit_grad": _pooled_logit_grad_by_autograd,
    "04.alignment_position_grad": _position_grad_by_autograd,
    "05.split_heads": _split_heads_by_slicing,
    "05.causal_mask": lambda T: causal_mask(T),
    "05.sinusoidal_encoding": _sinusoid_by_formula,
    "05.mha_forward": _mha_by_module,
    "05.pre_ln_block": lambda x, block, mask: torch.no_grad()(block.forward)(x, mask),
    "06.flops_per_token": _flops_as_three_forward_passes,
    "06.mfu": _mfu_from_achieved_tflops,
    "07.online_softmax_update": _online_update_in_log_space,
    "07.block_dv": _block_dv_by_loop,
    "07.tile_backward": _tile_by_surrogate_loss,
    "07.triton_online_update": _triton_update_in_log_space,
    "08.switch_cost": _switch_cost_by_loop,
    "08.attention_shift": _js_bits_as_two_kls,
    "08.gate_gradient": _gate_gradient_by_autograd,
    "10.lora_forward": _lora_by_merged_weight,
    "10.merge_lora": _merged_weight_by_probing,
    "11.target_attention": _target_attention_by_loop,
    "11.candidate_gradient": lambda h, c, m, g: _candidate_gradient_by_autograd(h, c, m, g),
    "11.mase": _mase_by_loop,
    "12.integrated_gradients": _ig_by_analytic_gradient,
    "12.ig_quadratic": _ig_quadratic_by_trapezoid,
    "12.head_contribution": _head_term_by_zeroing_the_others,
    "09.expected_calibration_error": _ece_by_sorting,
    "09.project_l2": _l2_projection_by_multiplier,
    "10.prefix_decomposition": _prefix_parts_by_concatenation,
}

# Plausible mistakes a reference must reject (each is what a learner, or a regression, might write).
WRONG = {
    "01.entropy_slope": lambda z, tau: _entropy_slope_by_autograd(z, tau) * tau,  # Var/τ², a power of τ lost
    "02.softmax_backward": lambda p, g: p * g,                           # forgot the −⟨g, p⟩ term
    "02.attention_dv": lambda w, g: (w.transpose(-2, -1) @ g) / w.shape[-2],  # averaged, not summed
    "02.attention_dq": lambda q, k, v, g, scale: _dq_by_autograd(q, k, v, g, 1.0) * scale,  # scale once
    "02.attention_dk": lambda q, k, v, g, scale: _dk_by_autograd(q, k, v, g, scale) / scale,  # scale dropped
    "02.additive_backward": _additive_without_tanh_derivative,              # tanh' taken as 1
    "05.layernorm_backward": _layernorm_sigma_held_constant,                  # σ treated as a constant
    "05.split_heads": lambda x, n: x.reshape(x.shape[0], n, x.shape[1], x.shape[2] // n),  # mixes T and H
    "05.sinusoidal_encoding": lambda T, d: _sinusoid_by_formula(T, d)[:, torch.arange(d) ^ 1],  # sin↔cos
    "05.mha_forward": lambda *args: _mha_by_module(*args[:-1], None),      # the mask forgotten
    "05.pre_ln_block": _post_ln,                                          # post-LN, not pre-LN
    "06.flops_per_token": lambda n, L, d, T: 6.0 * n + 6.0 * L * d * T,  # forward-only attention term ×3/2
    "06.mfu": lambda tps, fpt, peak: tps * fpt / (peak * 1e9),            # TFLOP/s read as GFLOP/s
    "07.online_softmax_update": lambda m, l, x: (                         # the old sum not rescaled
        torch.maximum(m, x.amax(-1)), l + torch.exp(x - torch.maximum(m, x.amax(-1))[..., None]).sum(-1)),
    "07.triton_online_update": _triton_update_rescaled_late,               # α applied to the new terms too
    "07.block_dv": lambda q, k, lse, g, scale: (                          # the tile re-softmaxed alone
        torch.softmax(scale * q @ k.transpose(-2, -1), dim=-1).transpose(-2, -1) @ g),
    "07.tile_backward": lambda q, k, v, lse, o, g, scale: _tile_by_surrogate_loss(   # ρ from the tile alone
        q, k, v, lse, torch.exp(scale * q @ k.transpose(-2, -1) - lse[..., None]) @ v, g, scale),
    "08.switch_cost": lambda acc, s, w: acc[s:s + w].mean() - acc[s - w:s].mean(),  # the sign flipped
    "08.attention_shift": lambda p, q: _js_bits_as_two_kls(p, q) * math.log(2),     # nats, not bits
    "08.gate_gradient": _gate_gradient_diagonal_only,                                # cross terms dropped
    "10.lora_forward": lambda x, w0, b0, a, b, alpha: (                   # scaled by α, not α / r
        x @ w0.T + b0 + alpha * (x @ a.T) @ b.T),
    "10.merge_lora": lambda w0, a, b, alpha: w0 + alpha * b @ a,          # scaled by α, not α / r
    "11.target_attention": lambda h, c, mask: _target_attention_by_loop(             # the mask forgotten
        h, c, torch.ones_like(mask)),
    "11.mase": lambda f, a, train, m: _mase_by_loop(f, a, train, 1),                  # scaled by naive, not seasonal
    "12.integrated_gradients": lambda f, x, b, n: (                       # left Riemann sum, not midpoints
        (x - b) * sum(
            ((1 - torch.tanh((b + s / n * (x - b)) @ f.w1) ** 2) * f.w2) @ f.w1.T for s in range(n)) / n),
    "12.head_contribution": lambda z, w, h: (                             # rows of W_O, not columns
        z[..., h, :] @ w[h * z.shape[-1]:(h + 1) * z.shape[-1], :]),
    "11.candidate_gradient": lambda h, c, m, g: (                          # the Σ_k α_k g·h_k term forgotten
        (torch.softmax(((h @ c[..., None]).squeeze(-1) / h.shape[-1] ** 0.5).masked_fill(~m, float("-inf")), -1)
         * (h @ g[..., None]).squeeze(-1))[..., None] * h).sum(1) / h.shape[-1] ** 0.5,
    "12.ig_quadratic": lambda A, b, x, base: (x - base) * (((x + base) / 2) @ (2 * A).T + b),  # 2Ax: A not symmetric
    "09.expected_calibration_error": _ece_unweighted,                                # bins not weighted
    "09.project_l2": lambda d, eps: d * eps / d.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1),  # sphere
    "10.prefix_decomposition": _prefix_gate_from_maxima,                  # max scores, not log-sum-exps
}


def _agrees(got, expected):
    if isinstance(expected, tuple):
        return all(_agrees(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(expected, float):
        return isinstance(got, float) and math.isclose(got, expected, rel_tol=1e-9)
    if got.dtype == torch.bool or not got.is_floating_point():
        return got.dtype == expected.dtype and torch.equal(got, expected)
    tol = 1e-10 if got.dtype == F64 else 1e-5
    return got.shape == expected.shape and torch.allclose(got.to(expected.dtype), expected, atol=tol, rtol=tol)


def _trials(exercise_id, trials=3):
    gen = torch.Generator().manual_seed(7)
    ex = exercises.get(exercise_id)
    return [ex.make_inputs(gen) for _ in range(trials)]


# Graded by behaviour (the loss falls from an untrained start), not against one expected output.
BEHAVIOURAL = {"05.training_loop"}


def test_every_exercise_has_an_independent_reference():
    assert {ex.id for ex in ALL} == set(REFERENCES) | BEHAVIOURAL


def _loop_without_step(model, get_batch, steps, lr):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        ids, targets = get_batch()
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()                      # optimizer.step() forgotten: nothing learns
        losses.append(loss.item())
    return losses


def _loop_returning_tensors(model, get_batch, steps, lr):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        ids, targets = get_batch()
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss)                  # keeps every step's graph alive
    return losses


def test_the_training_loop_is_graded_by_what_it_learns():
    assert check("05.training_loop", exercises.get("05.training_loop").solution).status == "correct"
    with pytest.raises(ExerciseError, match="should fall"):
        check("05.training_loop", _loop_without_step)
    with pytest.raises(ExerciseError, match="finite Python float"):
        check("05.training_loop", _loop_returning_tensors)


@pytest.mark.parametrize("ex", [ex for ex in ALL if ex.id not in BEHAVIOURAL], ids=lambda ex: ex.id)
def test_model_answer_matches_an_independent_reference(ex):
    for args in _trials(ex.id):
        got, expected = ex.solution(*args), REFERENCES[ex.id](*args)
        assert _agrees(got, expected), f"{ex.id}: model answer differs from the reference"
    assert check(ex.id, ex.solution).status == "correct"


@pytest.mark.parametrize("exercise_id", sorted(WRONG))
def test_reference_rejects_a_planted_wrong_answer(exercise_id):
    args = _trials(exercise_id, trials=1)[0]
    assert not _agrees(WRONG[exercise_id](*args), REFERENCES[exercise_id](*args))
    with pytest.raises(ExerciseError):
        check(exercise_id, WRONG[exercise_id])


def test_exercises_are_registered():
    assert any(ex.id == "00.softmax_temperature" for ex in ALL)


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_untouched_stub_is_not_attempted(ex):
    def stub(*args):
        raise NotImplementedError

    feedback = check(ex.id, stub)
    assert feedback.status == "not attempted" and "show_solution" in feedback.message


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_show_solution_returns_source(ex, capsys):
    source = show_solution(ex.id)
    assert source.startswith("def ") and source in capsys.readouterr().out


def test_wrong_answer_is_explained():
    with pytest.raises(ExerciseError) as err:
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s, dim=0))
    message = str(err.value)
    assert "entries differ" in message and "worst at index" in message and "Hint:" in message


def test_wrong_shape_is_explained():
    with pytest.raises(ExerciseError, match=r"has shape \(3,\), expected \(3, 6\)"):
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s / tau, -1).sum(-1))


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(KeyError, match="00.softmax_temperature"):
        check("99.nope", lambda: None)


def test_describe_difference():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert describe_difference(a, a.clone(), 1e-6, 1e-6) is None
    b = a.clone()
    b[1, 0] = 3.5
    assert "1 of 4 entries differ; worst at index (1, 0): got 3.5, expected 3" in describe_difference(b, a, 1e-6, 1e-6)
    assert "contains NaN" in describe_difference(torch.full((2, 2), float("nan")), a, 1e-6, 1e-6)
    assert "should be a torch.Tensor" in describe_difference([1, 2], a, 1e-6, 1e-6)
