"""The LR-matched Adam reset: the shadow moments give exactly the step no-reset Adam would take, and a
rescaled step has the asked-for length in the same direction."""

import pytest
import torch

from attnflex_lab.elasticity.experiment import ShadowAdam, SwitchConfig, _rescale_step


def _model_and_steps(n_steps=5):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(n_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


def test_shadow_adam_predicts_the_step_adam_would_take(one_torch_thread):
    model, opt = _model_and_steps()
    shadow = ShadowAdam(opt)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(3):                       # several steps: the shadow's moments keep pace with Adam's
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        predicted = shadow.step_norm()
        before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        taken = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True)))
        assert predicted == pytest.approx(float(taken), rel=1e-5)


def test_rescale_step_keeps_the_direction_and_sets_the_length():
    p = [torch.tensor([3.0, 4.0]), torch.tensor([0.0])]
    before = [torch.tensor([0.0, 0.0]), torch.tensor([0.0])]
    _rescale_step(p, before, norm=10.0)      # the step (3, 4, 0) has length 5 -> doubled
    torch.testing.assert_close(p[0], torch.tensor([6.0, 8.0]))
    torch.testing.assert_close(p[1], torch.tensor([0.0]))


def test_lr_matched_reset_is_an_option_of_the_reset_family():
    with pytest.raises(ValueError, match="pointer_reset"):
        SwitchConfig(family="pointer", reset_lr_matched=True)
