"""FGSM, PGD, noise and token corruption (attnflex_lab.analysis.robustness)."""

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab.analysis.robustness import corrupt_tokens, fgsm, gaussian_noise, pgd, project_l2


def _linear_problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)          # (D, classes)
    x = torch.rand(8, 5, generator=gen, dtype=torch.float64) * 0.6 + 0.2  # (N, D) inside (0, 1)
    y = torch.randint(0, 3, (8,), generator=gen)

    def loss_of(inputs):
        return F.cross_entropy(inputs @ w, y)
    return loss_of, x


def test_fgsm_moves_every_entry_by_eps_and_raises_the_loss():
    loss_of, x = _linear_problem()
    x_adv = fgsm(loss_of, x, 0.05)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.05))  # L-inf norm exactly eps, everywhere
    assert loss_of(x_adv) > loss_of(x)


def test_fgsm_steps_along_the_gradient_sign():
    loss_of, x = _linear_problem(1)
    x_req = x.clone().requires_grad_(True)
    loss_of(x_req).backward()
    assert torch.equal(torch.sign(fgsm(loss_of, x, 0.1) - x), x_req.grad.sign())


def test_fgsm_beats_random_signs_of_the_same_size():
    loss_of, x = _linear_problem(2)
    gen = torch.Generator().manual_seed(0)
    random_losses = [loss_of(x + 0.05 * torch.randint(0, 2, x.shape, generator=gen).double().mul(2).sub(1))
                     for _ in range(20)]
    assert loss_of(fgsm(loss_of, x, 0.05)) > max(random_losses)


def test_clamp_keeps_inputs_valid():
    loss_of, x = _linear_problem()
    x = x.clone()
    x[0] = 0.0
    x[1] = 1.0
    for x_adv in (fgsm(loss_of, x, 0.3, clamp=(0.0, 1.0)), pgd(loss_of, x, 0.3, clamp=(0.0, 1.0))):
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (x_adv - x).abs().max() <= 0.3 + 1e-12


def test_pgd_stays_in_the_ball_and_beats_fgsm_on_a_curved_loss():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()
    x = torch.randn(64, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (64,))

    def loss_of(inputs):
        return F.cross_entropy(net(inputs), y)
    eps = 0.5
    x_pgd = pgd(loss_of, x, eps, steps=20, generator=torch.Generator().manual_seed(0))
    assert (x_pgd - x).abs().max() <= eps + 1e-12
    assert loss_of(x_pgd) > loss_of(x)
    assert loss_of(x_pgd) >= loss_of(fgsm(loss_of, x, eps)) - 1e-9


def test_project_l2_is_the_nearest_point_of_the_ball_per_example():
    gen = torch.Generator().manual_seed(0)
    lengths_wanted = torch.tensor([0, .1, .5, 1, 2, 4.], dtype=torch.float64).view(-1, 1, 1)
    delta = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64) * lengths_wanted
    eps = 0.8
    got = project_l2(delta, eps)
    lengths = delta.flatten(1).norm(dim=1)
    assert torch.equal(got[lengths <= eps], delta[lengths <= eps])                     # inside: unchanged
    outside = got.flatten(1).norm(dim=1)[lengths > eps]
    torch.testing.assert_close(outside, torch.full_like(outside, eps))                 # outside: onto the sphere
    # nearest: no other point of the ball, sampled, is closer to delta than the projection
    cand = torch.randn(500, 2, 3, generator=gen, dtype=torch.float64)
    radii = eps * torch.rand(500, 1, 1, generator=gen, dtype=torch.float64)
    cand = cand / cand.flatten(1).norm(dim=1).view(-1, 1, 1) * radii
    for n in range(len(delta)):
        nearest_sampled = (delta[n] - cand).flatten(1).norm(dim=1).min()
        assert (delta[n] - got[n]).norm() <= nearest_sampled + 1e-12


def test_l2_pgd_stays_in_the_l2_ball_and_raises_the_loss():
    loss_of, x = _linear_problem(3)
    eps = 0.3
    x_adv = pgd(loss_of, x, eps, norm="l2", steps=10, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).flatten(1).norm(dim=1).max() <= eps + 1e-12
    assert (x_adv - x).abs().max() > eps / 5 ** 0.5 + 1e-3      # not confined to the L∞ ball of the same volume
    assert loss_of(x_adv) > loss_of(x)
    # one step from x, inside the ball: exactly step_size along the normalised gradient, per example
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(x_req), x_req)
    one = pgd(loss_of, x, eps, norm="l2", steps=1, step_size=0.1, random_start=False)
    torch.testing.assert_close(one - x, 0.1 * grad / grad.norm(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="norm must be one of"):
        pgd(loss_of, x, eps, norm="l1")
    with pytest.raises(TypeError, match="floating-point"):
        project_l2(torch.ones(3, dtype=torch.long), eps)


def test_pgd_with_eps_zero_returns_the_input():
    loss_of, x = _linear_problem()
    assert torch.equal(pgd(loss_of, x, 0.0), x)


def test_attacks_leave_parameter_gradients_alone():
    lin = torch.nn.Linear(5, 3).double()
    _, x = _linear_problem()
    y = torch.zeros(8, dtype=torch.long)
    fgsm(lambda inputs: F.cross_entropy(lin(inputs), y), x, 0.1)
    assert lin.weight.grad is None


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_eps_is_refused(eps):
    loss_of, x = _linear_problem()
    with pytest.raises(ValueError, match="eps"):
        fgsm(loss_of, x, eps)
    with pytest.raises(ValueError, match="eps"):
        pgd(loss_of, x, eps)


def test_bad_inputs_are_refused_with_their_shape_or_dtype():
    loss_of, x = _linear_problem()
    with pytest.raises(TypeError, match="int64"):
        fgsm(loss_of, torch.zeros(3, 5, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match=r"\(0, 5\)"):
        fgsm(loss_of, torch.zeros(0, 5), 0.1)
    with pytest.raises(ValueError, match=r"scalar loss, got \(8,\)"):
        fgsm(lambda inputs: (inputs ** 2).sum(-1), x, 0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd(loss_of, x, 0.1, steps=0)
    with pytest.raises(ValueError, match="clamp"):
        fgsm(loss_of, x, 0.1, clamp=(1.0, 0.0))


def test_gaussian_noise_has_the_asked_size():
    x = torch.zeros(20_000)
    noisy = gaussian_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert abs(noisy.std().item() - 0.3) < 0.01


def test_corrupt_tokens_changes_about_rate_of_them_and_always_to_another_token():
    idx = torch.randint(0, 10, (200, 50), generator=torch.Generator().manual_seed(0))
    out, changed = corrupt_tokens(idx, 0.3, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out != idx, changed)  # every changed token differs, every other is kept
    assert abs(changed.float().mean().item() - 0.3) < 0.02
    assert out.min() >= 0 and out.max() < 10
    with pytest.raises(ValueError, match="rate"):
        corrupt_tokens(idx, 1.5, 10)
    with pytest.raises(TypeError, match="int64"):
        corrupt_tokens(idx.float(), 0.1, 10)
