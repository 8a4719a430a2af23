"""Sequence tasks with known alignment, and the generated text corpus."""

import pytest
import torch

from attnflex_lab.tasks.algorithmic import make_task
from attnflex_lab.tasks.text import CharLMDataset, CharTokenizer, char_lm_data, make_corpus


def test_reverse_copy_sort_targets_and_alignment():
    for name in ("reverse", "copy", "sort"):
        task = make_task(name, 50, 9, seed=1)
        assert task.x.shape == task.y.shape == task.alignment.shape == (50, 9)
        assert torch.equal(task.y, torch.gather(task.x, 1, task.alignment))   # y_i = x[a_i]
        if name == "reverse":
            assert torch.equal(task.y, task.x.flip(1))
            assert task.alignment[0].tolist() == list(range(8, -1, -1))
        elif name == "copy":
            assert torch.equal(task.y, task.x)
        else:
            assert torch.equal(task.y, task.x.sort(dim=1).values)
            # every input position is read exactly once
            assert torch.equal(task.alignment.sort(dim=1).values, torch.arange(9).expand(50, 9))


def test_sort_breaks_ties_by_position():
    task = make_task("sort", 200, 8, vocab_size=3, seed=0)   # many ties
    same = task.y[:, 1:] == task.y[:, :-1]
    assert (task.alignment[:, 1:][same] > task.alignment[:, :-1][same]).all()


def test_tasks_are_seeded():
    a, b, c = (make_task("sort", 20, 6, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_dataset_and_errors():
    task = make_task("reverse", 10, 4)
    x, y = task.dataset()[3]
    assert x.shape == y.shape == (4,) and len(task) == 10
    assert len(task.dataset(with_alignment=True)[0]) == 3
    with pytest.raises(ValueError, match="not one of"):
        make_task("shuffle", 10, 4)
    with pytest.raises(ValueError, match="length must be an int"):
        make_task("sort", 10, 1)


def test_corpus_is_seeded_and_has_copyable_structure():
    text = make_corpus(5000, seed=0)
    assert len(text) >= 5000 and text == make_corpus(5000, seed=0) and text != make_corpus(5000, seed=1)
    for line in text.splitlines():
        if line.startswith("list: "):
            left, right = line[len("list: "):].split(" -> ")
            assert left == right          # the second half is a copy of the first


def test_tokenizer_round_trip_and_windows():
    train, val, tok = char_lm_data(3000, 16, seed=0)
    text = make_corpus(3000, seed=0)
    assert tok.decode(tok.encode(text)) == text
    x, y = train[5]
    assert x.shape == y.shape == (16,) and torch.equal(x[1:], y[:-1])
    assert len(train) + len(val) + 2 * 16 == len(text)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer("abc").encode("abz")
    with pytest.raises(ValueError, match="longer than block_size"):
        CharLMDataset(torch.arange(5), 8)
