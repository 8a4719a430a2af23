"""attnflex_lab.adapt.sweeps: seeds, budgets and the LoRA grid run what they say, on a tiny encoder."""

import pytest
import torch

from attnflex_lab import adapt
from attnflex_lab.adapt import sweeps
from attnflex_lab.adapt.transfer import rotate_task
from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder

T = 6


def _base():
    torch.manual_seed(0)
    return SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=T, d_model=16, n_heads=2))


def test_spread_is_mean_and_range():
    s = sweeps.spread([0.5, 1.0, 0.6])
    assert (s.mean, s.low, s.high) == (pytest.approx(0.7), 0.5, 1.0) and str(s) == "0.700 [0.500, 1.000]"
    with pytest.raises(ValueError, match="at least one"):
        sweeps.spread([])


def test_over_seeds_runs_every_method_on_every_seed_with_its_own_data(one_torch_thread):
    base, old = _base(), rotate_task(32, T, 2, seed=9)
    runs = sweeps.over_seeds(base, ("linear_probe", "lora"), (0, 1), old, profile="smoke", length=T, steps=2,
                             cfgs={"lora": adapt.LoRAConfig(rank=2)})
    assert list(runs) == ["linear_probe", "lora"] and all(len(r) == 2 for r in runs.values())
    assert runs["lora"][0].trainable == 2 * 2 * 2 * 16 * 2      # layers × targets × (A + B) × C × r
    # the two seeds saw different data and different starts: their probes differ
    w0, w1 = (r.model.head.weight for r in runs["linear_probe"])
    assert not torch.equal(w0, w1)


def test_budget_sweep_and_lora_grid_give_one_number_per_setting(one_torch_thread):
    base, old = _base(), rotate_task(32, T, 2, seed=9)
    new = {split: rotate_task(64, T, 1, seed=s) for split, s in (("train", 1), ("val", 2), ("test", 3))}
    curve = sweeps.budget_sweep(base, ("lora",), (1, 3), new, old, profile="smoke")
    assert list(curve) == ["lora"] and len(curve["lora"]) == 2
    with pytest.raises(ValueError, match="positive step counts"):
        sweeps.budget_sweep(base, ("lora",), (0,), new, old, profile="smoke")
    grid = sweeps.lora_grid(base, (1, 2), (("q",), ("q", "v")), new, old, profile="smoke", steps=1)
    assert set(grid) == {(1, "q"), (2, "q"), (1, "q+v"), (2, "q+v")}
    assert grid[(2, "q+v")]["trainable"] == 2 * grid[(2, "q")]["trainable"] == 4 * grid[(1, "q")]["trainable"]


def test_shifted_reverse_keeps_reverses_route_and_relabels_the_digits():
    task = sweeps.shifted_reverse_task(20, T, offset=3, seed=0)
    assert torch.equal(task.y, (task.x.flip(1) + 3) % 10)
    with pytest.raises(ValueError, match="offset"):
        sweeps.shifted_reverse_task(4, T, offset=0)


def test_the_prefix_gate_at_init_is_the_mass_on_the_prefix():
    model, x = _base(), torch.randint(0, 10, (4, T), generator=torch.Generator().manual_seed(0))
    adapt.add_prefix(model, adapt.PrefixConfig(length=3, init_std=0.0))   # zero keys: every prefix score is 0
    gate = sweeps.prefix_gate_at_init(model, x)
    assert 0 < gate < 1
