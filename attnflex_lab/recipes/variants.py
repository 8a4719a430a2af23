"""Recipe variants for lesson 09: one training knob changed against a baseline, over seeds.

A ``Variant`` names one setting of the knobs the lesson tests (schedule, warm-up, post-/pre-LN,
weight decay, dropout, attention dropout, label smoothing, early stopping, adversarial training).
``run_variant`` trains it on one of two small tasks with ``fit`` and returns the history (the
learning curves) and the final metrics:

- ``"reverse"`` and ``"sort"``: the sequence encoder of those recipes (known alignment: output i
  of reverse reads input T − 1 − i), so attention entropy and attention-on-target can be read off;
- ``"digits"``: the attention-pooling classifier of the "digits" recipe, for pixel-space
  robustness, ensembles and calibration.

``run_variants`` loops variants × seeds; ``mean_sd`` summarises a metric. Sizes come from the
profile (``sizes_for``), so smoke runs in seconds and cpu really learns.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..analysis.robustness import corrupt_tokens, fgsm, pgd
from ..metrics import accuracy, attention_entropy, attention_on_target, exact_match
from ..models.classifier import AttentionPoolingClassifier, ClassifierConfig
from ..models.transformer import EncoderConfig, SequenceEncoder
from ..modules import run_with_cache
from ..profiles import by_profile
from ..tasks.algorithmic import make_task
from ..tasks.digits import make_digits
from ..training import History, TrainConfig, fit
from .sequence import VOCAB, predict

TASKS = ("reverse", "sort", "digits")


@dataclass(frozen=True)
class Variant:
    name: str                         # the label in tables and figures
    lr: float = 3e-3                  # peak lr
    warmup_steps: int = 0             # linear warm-up steps (0 = none)
    schedule: str = "cosine"          # "cosine" decay to 10 % after warm-up, or "constant"
    norm_first: bool = True           # encoder only: pre-LN (True) or post-LN (False) blocks
    weight_decay: float = 0.0         # AdamW decoupled decay, on matrices only (training/optim.py)
    dropout: float = 0.0              # residual-branch dropout (encoder) / pooled-vector dropout (digits)
    attn_dropout: float = 0.0         # encoder only: dropout on the attention weights
    label_smoothing: float = 0.0      # cross-entropy against (1 − s)·one-hot + s / classes
    patience: int | None = None       # early stopping on the validation metric (evals); None = off
    adversarial: str | None = None    # digits only: None, "fgsm" or "pgd" training batches
    eps: float = 0.0                  # the L∞ radius of adversarial training (pixels in [0, 1])
    attack_steps: int = 3             # PGD steps per training batch (each costs a forward-backward)

    def __post_init__(self):
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.adversarial not in (None, "fgsm", "pgd"):
            raise ValueError(f"adversarial must be None, 'fgsm' or 'pgd', got {self.adversarial!r}")
        if self.adversarial and not self.eps > 0:
            raise ValueError(f"adversarial training needs eps > 0, got {self.eps!r}")


@dataclass(frozen=True)
class Sizes:
    steps: int                        # optimizer steps per run
    batch_size: int
    eval_every: int                   # steps between validation evaluations (the curves' points)
    n_train: int | None = None        # encoder: training sequences; digits: None = the whole split
    length: int = 8                   # encoder: sequence length
    d_model: int = 32                 # encoder: model width
    n_layers: int = 2                 # encoder: blocks


def sizes_for(task: str, profile_name: str | None = None) -> Sizes:
    """Per-profile sizes: smoke runs each variant in well under a second, cpu in a few seconds."""
    if task in ("reverse", "sort"):
        return Sizes(steps=by_profile(smoke=20, cpu=300, gpu=1500, profile_name=profile_name),
                     batch_size=by_profile(smoke=32, cpu=64, gpu=128, profile_name=profile_name),
                     eval_every=by_profile(smoke=10, cpu=25, gpu=100, profile_name=profile_name),
                     n_train=by_profile(smoke=256, cpu=4000, gpu=50_000, profile_name=profile_name),
                     length=by_profile(smoke=6, cpu=8, gpu=12, profile_name=profile_name),
                     d_model=by_profile(smoke=16, cpu=32, gpu=64, profile_name=profile_name))
    if task == "digits":
        return Sizes(steps=by_profile(smoke=20, cpu=300, gpu=1500, profile_name=profile_name),
                     batch_size=64,
                     eval_every=by_profile(smoke=10, cpu=25, gpu=100, profile_name=profile_name),
                     n_train=by_profile(smoke=400, cpu=None, gpu=None, profile_name=profile_name))
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def small_data_sizes(profile_name: str | None = None) -> Sizes:
    """Lesson 09's over-fitting setting: sort learned from 64 training sequences, where the encoder
    reaches train token accuracy 1.0 and a clearly lower test accuracy, so regularisers have a gap to
    close. The gpu profile runs the cpu sizes: the claims were measured there (a wider model on
    longer sequences is another experiment)."""
    sized_as = "smoke" if by_profile(smoke=True, cpu=False, gpu=False, profile_name=profile_name) else "cpu"
    return dataclasses.replace(sizes_for("sort", sized_as), n_train=64,
                               steps=by_profile(smoke=20, cpu=300, gpu=300, profile_name=profile_name))


def regulariser_variants(steps: int, lr: float = 3e-3) -> list[Variant]:
    """A baseline (lr with a warm-up over the first 10 % of ``steps``, no regulariser) and one variant
    per regulariser, each adding exactly one knob to the baseline."""
    base = {"lr": lr, "warmup_steps": steps // 10}
    return [Variant("baseline", **base),
            Variant("weight decay 0.1", weight_decay=0.1, **base),
            Variant("dropout 0.1", dropout=0.1, **base),
            Variant("attention dropout 0.1", attn_dropout=0.1, **base),
            Variant("label smoothing 0.1", label_smoothing=0.1, **base),
            Variant("early stopping", patience=4, **base)]


@dataclass
class VariantRun:
    variant: Variant
    seed: int
    history: History                  # the learning curves
    metrics: dict                     # final test metrics (floats)
    model: nn.Module                  # the trained model (eval mode)
    extras: dict                      # the data it was trained and tested on


def train_config(variant: Variant, sizes: Sizes, seed: int, metric: str) -> TrainConfig:
    return TrainConfig(steps=sizes.steps, batch_size=sizes.batch_size, lr=variant.lr,
                       weight_decay=variant.weight_decay, warmup_steps=variant.warmup_steps,
                       min_lr_ratio=1.0 if variant.schedule == "constant" else 0.1,
                       eval_every=sizes.eval_every, patience=variant.patience, metric=metric,
                       seed=seed, progress=False)


# --- reverse and sort: the sequence encoder ----------------------------------------------------------

def encoder_attention(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Normalised entropy of every head's attention (mean over heads and layers), and the best head's
    attention mass on the inputs that hold the right output token (for reverse: the true position;
    for sort: every copy of the right digit, since equal digits make the position ambiguous)."""
    _, cache = run_with_cache(model, x, names="hook_pattern")
    maps = cache.patterns()                                        # (L, N, H, T, S)
    right = x[:, None, :] == y[:, :, None]                         # (N, T, S): input j holds output i's token
    on_target = max(attention_on_target(maps[layer, :, head], right)
                    for layer in range(maps.shape[0]) for head in range(maps.shape[2]))
    return {"attention_entropy": attention_entropy(maps, normalized=True),
            "attention_on_target": on_target}


def lesson_encoder(sizes: Sizes, norm_first: bool, *, dropout: float = 0.0, attn_dropout: float = 0.0
                   ) -> SequenceEncoder:
    """The lesson's encoder at ``sizes`` (4 heads; its positions cover ``sizes.length``), drawn from
    torch's current seed: sections 2-5 train it, the LR range test sweeps it."""
    return SequenceEncoder(EncoderConfig(vocab_size=VOCAB, n_classes=VOCAB, max_len=sizes.length,
                                         d_model=sizes.d_model, n_heads=4, n_layers=sizes.n_layers,
                                         dropout=dropout, attn_dropout=attn_dropout, norm_first=norm_first))


def reverse_corruption(model: nn.Module, test, rate: float, seed: int) -> dict[str, float]:
    """Section 6's token corruption on a reverse model: each input digit of ``test`` (x, y: (N, T)) is
    replaced with probability ``rate``; the share of all outputs right, of the outputs whose source
    digit was kept, and of the corrupted outputs that copy the new digit (NaN when none was)."""
    if test.x.dim() != 2 or test.x.shape != test.y.shape:
        raise ValueError(f"test.x and test.y must both be (N, T) token tensors of one shape, got "
                         f"{tuple(test.x.shape)} and {tuple(test.y.shape)}")
    x_bad, changed = corrupt_tokens(test.x, rate, VOCAB, generator=torch.Generator().manual_seed(seed))
    preds = predict(model, x_bad)                                  # (N, T)
    source_changed = changed.flip(1)                               # output i reads input T - 1 - i
    copied = (accuracy(preds[source_changed], x_bad.flip(1)[source_changed]) if source_changed.any()
              else float("nan"))
    return {"all outputs": accuracy(preds, test.y),
            "outputs whose source was kept": accuracy(preds[~source_changed], test.y[~source_changed]),
            "corrupted outputs copy the new digit": copied}


def _run_encoder(task: str, variant: Variant, sizes: Sizes, seed: int, data_seed: int) -> VariantRun:
    if variant.adversarial:
        raise ValueError("adversarial training is offered on the digits task (pixels) only")
    base = 1000 * data_seed
    train, val, test = (make_task(task, n, sizes.length, vocab_size=VOCAB, seed=base + k)
                        for k, n in ((1, sizes.n_train), (2, 512), (3, 512)))
    torch.manual_seed(seed)
    model = lesson_encoder(sizes, variant.norm_first, dropout=variant.dropout, attn_dropout=variant.attn_dropout)

    def loss_fn(m, batch):
        x, y = batch                                               # (B, T), (B, T)
        logits = m(x)                                              # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), label_smoothing=variant.label_smoothing)

    def eval_fn(m, data):
        x, y = data.tensors
        logits = m(x)                                              # (N, T, V)
        return {"token_accuracy": accuracy(logits.argmax(-1), y),
                "val_loss": F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()}

    cfg = train_config(variant, sizes, seed, metric="val_loss")  # early stopping watches the val loss
    history = fit(model, train.dataset(), val.dataset(), cfg, loss_fn=loss_fn, eval_fn=eval_fn)
    model.eval()
    with torch.no_grad():
        preds = predict(model, test.x)                             # (N, T)
        train_preds = predict(model, train.x)                      # (n_train, T): the over-fitting check
        test_acc, train_acc = accuracy(preds, test.y), accuracy(train_preds, train.y)
        metrics = {"test_token_accuracy": test_acc,
                   "test_exact_match": exact_match(preds, test.y),
                   "train_token_accuracy": train_acc,
                   "generalisation_gap": train_acc - test_acc,
                   **encoder_attention(model, test.x, test.y)}
    return VariantRun(variant, seed, history, metrics, model, {"train": train, "test": test})


# --- digits: the attention-pooling classifier -----------------------------------------------------

def digits_probs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, 10) of images (N, 1, 8, 8), in eval mode without gradients."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = model(images)[0].softmax(-1)                       # (N, 10)
    model.train(was_training)
    return probs


def attack_images(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str,
                  eps: float, *, steps: int = 7, seed: int = 0) -> torch.Tensor:
    """Adversarial pixels (N, 1, 8, 8) in [0, 1] for the model's cross-entropy: "fgsm" or "pgd"."""
    def loss_of(x):
        return F.cross_entropy(model(x)[0], labels)
    if attack == "fgsm":
        return fgsm(loss_of, images, eps, clamp=(0.0, 1.0))
    if attack == "pgd":
        return pgd(loss_of, images, eps, steps=steps, clamp=(0.0, 1.0),
                   generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str,
                    eps: float, *, steps: int = 7, seed: int = 0) -> float:
    """Accuracy on adversarially perturbed images (the attack sees the model in eval mode)."""
    was_training = model.training
    model.eval()
    adversarial = attack_images(model, images, labels, attack, eps, steps=steps, seed=seed)
    model.train(was_training)
    return accuracy(digits_probs(model, adversarial), labels)


def _run_digits(task: str, variant: Variant, sizes: Sizes, seed: int, data_seed: int) -> VariantRun:
    if not variant.norm_first or variant.attn_dropout:
        raise ValueError("norm_first and attn_dropout are knobs of the sequence encoder; the digits "
                         "classifier has no transformer block")
    data = make_digits(data_seed, limit=sizes.n_train)
    torch.manual_seed(seed)
    model = AttentionPoolingClassifier(ClassifierConfig(dropout=variant.dropout))

    def loss_fn(m, batch):
        images, labels = batch                                     # (B, 1, 8, 8), (B,)
        if variant.adversarial:  # Madry et al.'s min-max: train on the worst batch in the ball
            images = attack_images(m, images, labels, variant.adversarial, variant.eps,
                                   steps=variant.attack_steps)
        return F.cross_entropy(m(images)[0], labels, label_smoothing=variant.label_smoothing)

    def eval_fn(m, data_split):
        images, labels = data_split.tensors
        logits = m(images)[0]                                      # (N, 10)
        return {"accuracy": accuracy(logits, labels),
                "val_loss": F.cross_entropy(logits, labels).item()}

    cfg = train_config(variant, sizes, seed, metric="val_loss")
    history = fit(model, data.train, data.val, cfg, loss_fn=loss_fn, eval_fn=eval_fn)
    model.eval()
    images, labels = data.test.tensors
    metrics = {"test_accuracy": accuracy(digits_probs(model, images), labels)}
    return VariantRun(variant, seed, history, metrics, model, {"data": data})


def run_variant(task: str, variant: Variant, seed: int, sizes: Sizes | None = None, *,
                data_seed: int | None = None, **size_overrides) -> VariantRun:
    """Train one variant on ``task`` ("reverse", "sort" or "digits") with ``seed``; see the module doc.

    ``seed`` draws the initial weights and the batch order; ``data_seed`` (default: ``seed``) the
    data split, so an ensemble can train several seeds on one split."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    sizes = dataclasses.replace(sizes or sizes_for(task), **size_overrides)
    runner = _run_digits if task == "digits" else _run_encoder
    run = runner(task, variant, sizes, seed, seed if data_seed is None else data_seed)
    run.metrics["steps_trained"] = float(run.history.steps[-1]["step"])  # fewer if stopped early
    return run


def run_variants(task: str, variants, seeds, sizes: Sizes | None = None, **size_overrides
                 ) -> dict[str, list[VariantRun]]:
    """{variant name: [one VariantRun per seed]}, every variant trained on the same seeds."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    return {v.name: [run_variant(task, v, s, sizes, **size_overrides) for s in seeds] for v in variants}


def saved_curves(runs: dict[str, list[VariantRun]], key: str, where: str = "evals") -> dict:
    """{variant: [(steps, values), ...one per seed]}: plain data for ``viz.recipes`` (no models)."""
    return {name: [r.history.values(key, where) for r in seed_runs] for name, seed_runs in runs.items()}


def summary_table(runs: dict[str, list[VariantRun]], keys) -> str:
    """A plain-text table: one row per variant, "mean ± sd" of each final metric over seeds."""
    width = max(len(name) for name in runs) + 2
    lines = ["variant".ljust(width) + "".join(k.rjust(24) for k in keys)]
    for name, seed_runs in runs.items():
        cells = "".join(f"{m:.3f} ± {sd:.3f}".rjust(24) for m, sd in (mean_sd(seed_runs, k) for k in keys))
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)


def mean_sd(runs: list[VariantRun], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation of a final metric over seeds (sd 0 for one seed)."""
    values = [r.metrics[key] for r in runs]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# --- warm-up's mechanism, measured at initialisation (Xiong et al. 2020) ---------------------------

def block_gradient_norms(model: nn.Module, loss: torch.Tensor, *, retain_graph: bool = False) -> list[float]:
    """‖∂loss/∂θ_l‖ over the parameters of each block of ``model.blocks``, layer 0 first."""
    params = [list(b.parameters()) for b in model.blocks]
    grads = torch.autograd.grad(loss, [p for ps in params for p in ps], retain_graph=retain_graph)
    norms, start = [], 0
    for ps in params:
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads[start:start + len(ps)])).item())
        start += len(ps)
    return norms


def init_gradient_report(norm_first: bool, seed: int, sizes: Sizes, lr: float) -> dict[str, list[float]]:
    """At initialisation, for the lesson's encoder on one training batch of the reverse task: each
    block's gradient norm, and each block's update/weight ratio ‖Δθ_l‖ / ‖θ_l‖ after one AdamW step
    at ``lr`` (Adam's first step moves every weight by about lr whatever its gradient's size)."""
    torch.manual_seed(seed)
    model = lesson_encoder(sizes, norm_first)
    data = make_task("reverse", sizes.batch_size, sizes.length, vocab_size=VOCAB, seed=1000 * seed + 1)
    loss = F.cross_entropy(model(data.x).flatten(0, 1), data.y.flatten())
    norms = block_gradient_norms(model, loss, retain_graph=True)
    before = [torch.cat([p.detach().flatten() for p in b.parameters()]).clone() for b in model.blocks]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss.backward()
    optimizer.step()
    ratios = [((torch.cat([p.detach().flatten() for p in b.parameters()]) - w).norm() / w.norm()).item()
              for b, w in zip(model.blocks, before, strict=True)]
    return {"grad_norm": norms, "update_ratio": ratios}
