"""The attention-pooling classifier and the Bahdanau seq2seq: shapes, masks, and what attention does."""

import pytest
import torch

from attnflex_lab.functional import attention_pool
from attnflex_lab.models.classifier import (
    AttentionPoolingClassifier,
    ClassifierConfig,
    MeanPoolingClassifier,
    constant_image_features,
    region_grid,
    with_circular_padding,
)
from attnflex_lab.models.seq2seq import AdditiveAttention, Seq2SeqAttention, Seq2SeqConfig
from attnflex_lab.tasks.dates import SOURCE_VOCAB, TARGET_VOCAB, encode_sources


def test_classifier_shapes_and_attention_is_a_distribution_over_regions():
    torch.manual_seed(0)
    model = AttentionPoolingClassifier().eval()
    images = torch.rand(5, 1, 8, 8)
    logits, alpha = model(images)
    assert logits.shape == (5, 10) and alpha.shape == (5, 16)
    assert torch.allclose(alpha.sum(-1), torch.ones(5)) and (alpha >= 0).all()
    # The pooling by hand, α_t = exp(e_t·w_a) / Σ_u exp(e_u·w_a) and c = Σ_t α_t e_t, written with
    # explicit sums (the model itself calls functional.attention_pool, so comparing with that would
    # compare it with itself). Planted bugs caught: softmax over the batch dim, mean pooling.
    with torch.no_grad():
        e = model.features(images)                                   # (B, T, d)
        scores = (e * model.w_a).sum(-1)                             # (B, T)
        weights = (scores - scores.max(-1, keepdim=True).values).exp()
        hand_alpha = weights / weights.sum(-1, keepdim=True)         # (B, T)
        hand_context = (hand_alpha[:, :, None] * e).sum(1)           # (B, d)
    torch.testing.assert_close(alpha, hand_alpha, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits, model.head(hand_context), atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_pool(e, model.w_a)[0], hand_context, atol=1e-6, rtol=0)
    assert region_grid(alpha).shape == (5, 4, 4)


def test_mean_pooling_baseline_is_uniform_and_one_vector_smaller():
    attn, mean = AttentionPoolingClassifier(), MeanPoolingClassifier()
    n_attn = sum(p.numel() for p in attn.parameters())
    n_mean = sum(p.numel() for p in mean.parameters())
    assert n_attn - n_mean == attn.cfg.d_model
    _, alpha = mean(torch.rand(3, 1, 8, 8))
    assert torch.allclose(alpha, torch.full((3, 16), 1 / 16))


def test_classifier_gradients_reach_the_context_vector():
    torch.manual_seed(0)
    model = AttentionPoolingClassifier()
    logits, _ = model(torch.rand(4, 1, 8, 8))
    (logits * torch.randn_like(logits)).sum().backward()
    assert model.w_a.grad is not None and model.w_a.grad.abs().sum() > 0


def test_without_learned_positions_p_t_stays_zero_and_padding_still_leaks_place():
    """Lesson 03's p_t ablation. With learned_positions=False, p_t is a zero buffer that a training
    step leaves at 0; a constant image then still gives different features per region (the zero
    padding marks the border), and circular padding, the control, gives identical ones.
    Planted bugs caught: p_t left a Parameter (it moves); with_circular_padding not changing the
    convolutions (the control's features differ too)."""
    torch.manual_seed(0)
    model = AttentionPoolingClassifier(ClassifierConfig(learned_positions=False))
    assert "features.position" not in dict(model.named_parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logits, _ = model(torch.rand(4, 1, 8, 8))
    (logits * torch.randn_like(logits)).sum().backward()
    opt.step()
    assert (model.features.position == 0).all()
    zero_padded = constant_image_features(model.features)              # (T, d)
    circular = constant_image_features(with_circular_padding(model).features)
    assert zero_padded.shape == circular.shape == (16, 64)
    assert (zero_padded - zero_padded.mean(0)).abs().max() > 1e-3      # the border shows
    assert (circular - circular.mean(0)).abs().max() < 1e-5            # no border, no place
    assert all(m.padding_mode == "zeros" for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_classifier_rejects_bad_images():
    model = AttentionPoolingClassifier()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(8, 8))
    with pytest.raises(ValueError, match="regions"):
        model(torch.rand(2, 1, 12, 12))


def _seq2seq():
    torch.manual_seed(0)
    return Seq2SeqAttention(Seq2SeqConfig(src_vocab=len(SOURCE_VOCAB), tgt_vocab=len(TARGET_VOCAB)))


def test_seq2seq_teacher_forcing_and_greedy_shapes_and_masking():
    model = _seq2seq().eval()
    src = encode_sources(["3 March 1987", "1987-03-03", "Tuesday, March 3, 1987"])  # (3, S)
    tgt = torch.randint(2, len(TARGET_VOCAB), (3, 10))
    logits, alpha = model(src, tgt)
    S = src.shape[1]
    assert logits.shape == (3, 10, len(TARGET_VOCAB)) and alpha.shape == (3, 10, S)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 10), atol=1e-6)
    assert (alpha[0, :, 12:] == 0).all() and (alpha[1, :, 10:] == 0).all()  # padding gets no weight
    tokens, greedy_alpha = model.generate(src)
    assert tokens.shape == (3, 10) and greedy_alpha.shape == (3, 10, S)
    # greedy decoding fed its own tokens back equals teacher forcing on those tokens
    forced_logits, forced_alpha = model(src, tokens)
    assert torch.equal(forced_logits.argmax(-1), tokens)
    assert torch.allclose(forced_alpha, greedy_alpha, atol=1e-6)


def test_seq2seq_padding_does_not_change_the_result():
    model = _seq2seq().eval()
    src = encode_sources(["3/4/87"])                  # (1, S), padded to S
    shorter = src[:, :10]                              # same characters, less padding
    tgt = torch.randint(2, len(TARGET_VOCAB), (1, 10))
    full_logits, full_alpha = model(src, tgt)
    short_logits, short_alpha = model(shorter, tgt)
    assert torch.allclose(full_logits, short_logits, atol=1e-5)
    assert torch.allclose(full_alpha[..., :10], short_alpha, atol=1e-6)


def test_additive_attention_matches_the_formula():
    torch.manual_seed(0)
    attn = AdditiveAttention(query_dim=6, key_dim=4, attn_dim=5)
    query, keys = torch.randn(2, 6), torch.randn(2, 7, 4)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    context, alpha = attn(query, attn.project_keys(keys), keys, mask)
    scores = attn.v_a(torch.tanh(attn.w_q(query)[:, None] + attn.w_k(keys))).squeeze(-1)
    expected = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    assert torch.allclose(alpha, expected, atol=1e-6)
    assert torch.allclose(context, (expected[..., None] * keys).sum(1), atol=1e-6)


def test_additive_attention_names_the_shapes_it_wants():
    attn = AdditiveAttention(query_dim=6, key_dim=4, attn_dim=5)
    query, keys = torch.randn(2, 6), torch.randn(2, 7, 4)
    mask = torch.ones(2, 7, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"projected_keys \(B, S, A=5\) from project_keys"):
        attn(query, keys, keys, mask)                  # raw keys, not projected: A is wrong
    with pytest.raises(ValueError, match=r"query \(B, Dq=6\).*got query \(2, 4\)"):
        attn(torch.randn(2, 4), attn.project_keys(keys), keys, mask)
    with pytest.raises(ValueError, match=r"values \(B, S, Dv\).*values \(2, 6, 4\)"):
        attn(query, attn.project_keys(keys), keys[:, :6], mask)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 6\) does not broadcast"):
        attn(query, attn.project_keys(keys), keys, mask[:, :6])
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        attn(query, attn.project_keys(keys), keys, mask.long())


def test_seq2seq_input_errors():
    model = _seq2seq()
    with pytest.raises(ValueError, match="int64 ids"):
        model(torch.rand(2, 5), torch.zeros(2, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="all padding"):
        model.generate(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tgt must be int64 ids of shape \(B, T\)"):
        model(encode_sources(["3/4/87"]), torch.zeros(2, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tgt must be int64 ids .*got torch.float32 \(1, 10\)"):
        model(encode_sources(["3/4/87"]), torch.zeros(1, 10))
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        model.generate(encode_sources(["3/4/87"]), max_len=0)


def test_lesson03_exercises_explain_plausible_wrong_answers():
    from attnflex_lab.exercises import ExerciseError, check

    assert check("03.feature_map_to_regions", lambda f: f.flatten(2).transpose(1, 2)).status == \
        "correct"
    with pytest.raises(ExerciseError, match="entries differ"):
        check("03.feature_map_to_regions", lambda f: f.reshape(f.shape[0], -1, f.shape[1]))

    def transposed(labels, predictions, num_classes):  # rows = predictions: the wrong way round
        flat = predictions * num_classes + labels
        return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)

    with pytest.raises(ExerciseError, match="Hint: rows are the true classes"):
        check("03.confusion_counts", transposed)


def test_lesson04_exercise_catches_a_forgotten_mask():
    from attnflex_lab.exercises import ExerciseError, check

    def no_mask(s, h, w_q, w_k, v_a, mask):
        scores = torch.tanh((s @ w_q.T).unsqueeze(1) + h @ w_k.T) @ v_a
        return torch.softmax(scores, -1)

    with pytest.raises(ExerciseError, match="Hint: padding must get weight 0"):
        check("04.additive_attention_weights", no_mask)


def test_seq2seq_without_attention_reads_only_the_last_states():
    """attention=False: α is zero, the context is [→h at the last real character ; ←h at 0], so
    padding changes nothing (planted bug: taking →h at the last *padded* position fails this)."""
    torch.manual_seed(0)
    model = Seq2SeqAttention(Seq2SeqConfig(len(SOURCE_VOCAB), len(TARGET_VOCAB), hidden=16,
                                           dec_hidden=32, attention=False)).eval()
    src = encode_sources(["3/4/87", "Tuesday, March 3, 1987"])            # (2, S)
    tgt = torch.randint(2, len(TARGET_VOCAB), (2, 10))
    logits, alpha = model(src, tgt)
    assert logits.shape == (2, 10, len(TARGET_VOCAB)) and (alpha == 0).all()
    short_logits, _ = model(src[:1, :6], tgt[:1])                          # no padding at all
    assert torch.allclose(logits[:1], short_logits, atol=1e-5)
    with torch.no_grad():                                                  # the context is the GRU's final states
        _, last = model.encoder(model.src_embed(src[:1, :6]))             # "3/4/87", no padding: (2, 1, H)
        h, _, _ = model.encode(src[:1])
    assert torch.allclose(torch.cat([h[0, 5, :16], h[0, 0, 16:]]), torch.cat([last[0, 0], last[1, 0]]),
                          atol=1e-6)


def test_dates_loss_trims_padding_without_changing_the_loss():
    """dates_loss cuts each batch to its longest source (a speed-up); the loss is the one on the
    fully padded batch. Planted bug caught: cutting to the *shortest* source drops real characters."""
    from attnflex_lab.recipes.dates import dates_loss, new_long_model
    from attnflex_lab.tasks.long_dates import make_long_dates

    data = make_long_dates(n_train=16, n_val=1, n_test=1, seed=0, max_words=4)
    src, tgt, align = data.train.tensors                                # (16, S_max), (16, 10), (16, 10)
    assert (src != 0).sum(1).max() < src.shape[1]                       # there is padding to cut
    torch.manual_seed(0)
    model = new_long_model(attention=True).eval()
    with torch.no_grad():
        logits, _ = model(src, tgt)                                     # (16, 10, V) on the padded batch
        full = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten())
        trimmed = dates_loss(model, (src, tgt, align))
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
