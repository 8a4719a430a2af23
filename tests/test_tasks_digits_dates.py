"""The digits split and the date generator (hypothesis: every example parses back to its date)."""

import datetime as dt
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflex_lab.tasks import dates as D
from attnflex_lab.tasks.digits import load_digit_arrays, make_digits

# --- digits ---------------------------------------------------------------------------------------


def test_digits_split_is_seeded_disjoint_and_complete():
    a, b, c = make_digits(0), make_digits(0), make_digits(1)
    assert a.sizes == {"train": 1258, "val": 180, "test": 359}
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    assert not torch.equal(a.test.tensors[0], c.test.tensors[0])
    images, labels = load_digit_arrays()
    assert images.shape == (1797, 1, 8, 8) and images.min() == 0 and images.max() == 1
    assert labels.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # every image lands in exactly one split: compare flattened images as byte strings
    def keys(ds):
        return [bytes(x.numpy().tobytes()) for x in ds.tensors[0]]
    parts = keys(a.train) + keys(a.val) + keys(a.test)
    assert sorted(parts) == sorted(keys(torch.utils.data.TensorDataset(images)))


def test_digits_limit_and_bad_fractions():
    small = make_digits(0, limit=100)
    assert sum(small.sizes.values()) == 100
    with pytest.raises(ValueError, match="leave room"):
        make_digits(0, val_fraction=0.5, test_fraction=0.5)


# --- dates ----------------------------------------------------------------------------------------

_dates = st.dates(min_value=dt.date(1700, 1, 1), max_value=dt.date(2299, 12, 31))


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(D.FORMATS), date=_dates)
def test_every_rendering_parses_back_to_its_iso_date(fmt, date):
    lo, hi = fmt.years
    date = date.replace(year=lo + (date.year - 1700) % (hi - lo + 1)) if not lo <= date.year <= hi \
        else date
    if date.month == 2 and date.day == 29:  # the shifted year may not be a leap year
        date = date.replace(day=28)
    text, align = fmt.render(date)
    parsed = dt.datetime.strptime(text, fmt.strptime).date()
    assert parsed == date, (text, fmt.strptime)
    iso = date.isoformat()
    assert len(align) == len(iso) == D.TARGET_LEN
    for t, pos in enumerate(align):
        if pos >= 0:
            assert text[pos] == iso[t], (text, iso, t, pos)  # the true source char IS the output char
    assert align[4] == align[7] == -1  # the dashes are never copied
    if "{A}" in fmt.template or "{a}" in fmt.template:
        assert D.WEEKDAYS[date.weekday()][:3].lower() in text.lower()


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_random_examples_parse_back_and_encode_losslessly(seed):
    ex = D.random_example(random.Random(seed))
    fmt = next(f for f in D.FORMATS if f.name == ex.format)
    assert dt.datetime.strptime(ex.text, fmt.strptime).date().isoformat() == ex.iso
    ids = D.SOURCE_VOCAB.encode(ex.text, D.MAX_SOURCE_LEN)
    assert len(ids) == D.MAX_SOURCE_LEN and D.SOURCE_VOCAB.decode(ids) == ex.text
    assert D.TARGET_VOCAB.decode(D.TARGET_VOCAB.encode(ex.iso)) == ex.iso


def test_alignment_undefined_exactly_where_nothing_is_copied():
    fmt = {f.name: f for f in D.FORMATS}
    text, align = fmt["D Month YYYY"].render(dt.date(1987, 3, 3))
    assert text == "3 March 1987" and align == [8, 9, 10, 11, -1, -1, -1, -1, -1, 0]
    text, align = fmt["M/D/YY"].render(dt.date(2023, 6, 4))
    assert text == "6/4/23" and align == [-1, -1, 4, 5, -1, -1, 0, -1, -1, 2]  # century unknown
    text, align = fmt["Weekday, Month D, YYYY"].render(dt.date(1987, 3, 3))
    assert text == "Tuesday, March 3, 1987"
    text, align = fmt["DD.MM.YYYY"].render(dt.date(1987, 3, 3))
    assert align == [6, 7, 8, 9, -1, 3, 4, -1, 0, 1]


def test_years_span_many_centuries_and_two_digit_years_follow_python():
    rng = random.Random(0)
    examples = [D.random_example(rng) for _ in range(3000)]
    centuries = {int(e.iso[:2]) for e in examples}
    assert centuries == {17, 18, 19, 20, 21, 22}
    short = [e for e in examples if e.format in ("M/D/YY", "DD-mon-YY")]
    assert short and all(1969 <= int(e.iso[:4]) <= 2068 for e in short)


def test_make_dates_splits_are_disjoint_seeded_and_padded():
    data = D.make_dates(n_train=300, n_val=50, n_test=80, seed=5)
    texts = {k: {e.text for e in v} for k, v in data.examples.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["val"])
    src, tgt, align = data.test.tensors
    assert src.shape == (80, D.MAX_SOURCE_LEN) and tgt.shape == align.shape == (80, 10)
    assert D.SOURCE_VOCAB.decode(src[0]) == data.examples["test"][0].text
    again = D.make_dates(n_train=300, n_val=50, n_test=80, seed=5)
    assert torch.equal(again.train.tensors[0], data.train.tensors[0])


def test_vocab_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"outside the vocabulary: \['é'\]"):
        D.encode_sources(["3 févr 1987"])
    with pytest.raises(ValueError, match="more than the"):
        D.SOURCE_VOCAB.encode("x" * 40, D.MAX_SOURCE_LEN)


def test_heatmap_labels_keep_one_label_per_output_position():
    """An untrained model emits <pad> and <s> mid-date; decode drops them, a heatmap's row labels
    must not (lesson 04's heatmaps crashed at the gpu profile's sizes in a dry run)."""
    ids = torch.tensor([D.TARGET_VOCAB.stoi[c] for c in ("1", "9", D.PAD, D.BOS)])
    assert D.TARGET_VOCAB.decode(ids) == "19"
    assert D.TARGET_VOCAB.labels(ids) == ["1", "9", D.PAD, D.BOS]
    with pytest.raises(ValueError, match=r"\(T,\), got \(1, 4\)"):
        D.TARGET_VOCAB.labels(ids[None])                      # a batch of one is not one sequence


def test_digits_content_matches_the_data_card_checksum():
    import hashlib

    import numpy as np

    images, labels = load_digit_arrays()
    raw = (images[:, 0] * 16).round().numpy().astype(np.uint8).tobytes()
    digest = hashlib.sha256(raw + labels.numpy().astype(np.uint8).tobytes()).hexdigest()
    assert digest == "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"


def test_long_dates_keep_the_alignment_and_the_translation():
    """Filler shifts the true alignment by the prefix; the date inside parses back to the target."""
    from attnflex_lab.tasks import long_dates as L

    examples = L.long_examples(300, seed=1, max_words=10, formats=L.NUMERIC_FORMATS)
    assert len({e.text for e in examples}) == 300
    assert {e.format for e in examples} == {f.name for f in L.NUMERIC_FORMATS}
    for e in examples:
        assert all(e.text[pos] == e.iso[t] for t, pos in enumerate(e.alignment) if pos >= 0), e
        date_part = next(w for w in e.text.split(" ") if any(c.isdigit() for c in w))
        fmt = next(f for f in L.NUMERIC_FORMATS if f.name == e.format)
        assert dt.datetime.strptime(date_part, fmt.strptime).date().isoformat() == e.iso
    lengths = [len(e.text) for e in examples]
    assert max(lengths) <= L.MAX_LONG_SOURCE_LEN and max(lengths) > 3 * min(lengths)
    data = L.make_long_dates(20, 5, 5, seed=2, max_words=4)
    assert data.train.tensors[0].shape == (20, L.MAX_LONG_SOURCE_LEN)
    with pytest.raises(ValueError, match="max_words"):
        L.long_examples(1, 0, max_words=L.MAX_WORDS + 1)


def test_canvas_holds_the_digit_at_its_corner_and_marks_its_regions():
    """The digit's pixels survive at the recorded corner (clutter only adds ink), the clutter puts
    ink elsewhere, and digit_regions marks exactly the 2x2 cells overlapping the 8x8 box."""
    from attnflex_lab.tasks.canvas import clutter, digit_regions

    digits = load_digit_arrays()[0][:50]                                     # (50, 1, 8, 8)
    canvas, corners = clutter(digits, 16, 4, torch.Generator().manual_seed(0))
    assert canvas.shape == (50, 1, 16, 16) and corners.min() >= 0 and corners.max() <= 8
    for i in range(50):
        r, c = corners[i].tolist()
        assert (canvas[i, 0, r:r + 8, c:c + 8] >= digits[i, 0]).all()
    outside = canvas.clone()
    for i in range(50):
        r, c = corners[i].tolist()
        outside[i, 0, r:r + 8, c:c + 8] = 0
    assert (outside.flatten(1).sum(1) > 0).float().mean() > 0.8               # clutter is there
    regions = digit_regions(torch.tensor([[0, 0], [3, 5], [4, 4]]), 16)     # (3, 64)
    assert regions[2].reshape(8, 8)[2:6, 2:6].all() and regions[2].sum() == 16   # an even corner
    assert regions[0].reshape(8, 8)[:4, :4].all() and regions[0].sum() == 16
    assert regions[1].reshape(8, 8)[1:6, 2:7].all() and regions[1].sum() == 25   # rows 3..10, cols 5..12
