"""Date-format translation with a known alignment: "Tuesday, March 3, 1987" -> "1987-03-03".

Each source string is rendered from a template of fields (year, month, day, names) and the
renderer records, for every character of the ISO target, which source character it was copied
from. That is the *true alignment*; it is undefined (-1) where nothing is copied: the dashes, the
"0" that pads a one-digit month or day, a month given by name, and the century of a two-digit year.

Years run from 1700 to 2299, so the century cannot be guessed from the decade and must be read
(the model has to look at it). Two-digit years follow Python's ``%y`` rule (69-99 -> 19xx,
00-68 -> 20xx), so those formats only draw years 1969-2068: any other year would make the
translation impossible, not just hard. Numeric formats never share a separator with a different
field order (US month/day uses "/", day.month uses "."), so no string is ambiguous.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
YEARS = (1700, 2299)          # inclusive range for four-digit-year formats
TWO_DIGIT_YEARS = (1969, 2068)  # the range Python's %y maps two digits onto
TARGET_LEN = 10               # "YYYY-MM-DD"
UNDEFINED = -1                # alignment entry where no source character is copied
PAD, BOS = "<pad>", "<s>"
SOURCE_CHARS = " ,-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TARGET_CHARS = "0123456789-"

# field -> strptime directive; ISO target positions each numeric field fills
_STRPTIME = {"Y": "%Y", "y": "%y", "m": "%m", "n": "%m", "d": "%d", "e": "%d", "B": "%B", "b": "%b",
             "A": "%A", "a": "%a"}
_FIELD = re.compile(r"\{([A-Za-z])\}")


@dataclass(frozen=True)
class DateFormat:
    name: str          # short label, e.g. "D Month YYYY"
    template: str      # fields in braces: Y year, y 2-digit year, m/n month (padded/not),
                       # d/e day (padded/not), B/b month name (full/abbr.), A/a weekday (full/abbr.)
    case: str = "title"  # "title", "upper" or "lower" for the names

    @property
    def two_digit_year(self) -> bool:
        return "{y}" in self.template

    @property
    def years(self) -> tuple[int, int]:
        return TWO_DIGIT_YEARS if self.two_digit_year else YEARS

    @property
    def strptime(self) -> str:
        """The ``datetime.strptime`` pattern that reads this format back."""
        return _FIELD.sub(lambda m: _STRPTIME[m.group(1)], self.template)

    def render(self, date: dt.date) -> tuple[str, list[int]]:
        """The date in this format, and each ISO character's source position (-1: none)."""
        align = [UNDEFINED] * TARGET_LEN
        out, pos = [], 0
        for literal, field in _split(self.template):
            out.append(literal)
            pos += len(literal)
            if field is None:
                continue
            text = self._field_text(field, date)
            _mark(align, field, text, pos)
            out.append(text)
            pos += len(text)
        return "".join(out), align

    def _field_text(self, field: str, date: dt.date) -> str:
        numbers = {"Y": f"{date.year:04d}", "y": f"{date.year % 100:02d}", "m": f"{date.month:02d}",
                   "n": str(date.month), "d": f"{date.day:02d}", "e": str(date.day)}
        if field in numbers:
            return numbers[field]
        name = {"B": MONTHS[date.month - 1], "b": MONTHS[date.month - 1][:3],
                "A": WEEKDAYS[date.weekday()], "a": WEEKDAYS[date.weekday()][:3]}[field]
        return {"title": name, "upper": name.upper(), "lower": name.lower()}[self.case]


def _split(template: str):
    """[(literal, field or None), ...] covering the whole template."""
    parts, last = [], 0
    for m in _FIELD.finditer(template):
        parts.append((template[last:m.start()], m.group(1)))
        last = m.end()
    parts.append((template[last:], None))
    return parts


def _mark(align: list[int], field: str, text: str, pos: int) -> None:
    """Record where the ISO characters of ``field`` come from (``text`` starts at ``pos``)."""
    slots = {"Y": (0, 1, 2, 3), "y": (2, 3), "m": (5, 6), "n": (5, 6), "d": (8, 9), "e": (8, 9)}
    if field not in slots:
        return  # names: the number is looked up, not copied
    targets = slots[field][-len(text):]  # a one-digit "3" fills only the last slot of "03"
    for offset, t in enumerate(targets):
        align[t] = pos + offset


FORMATS: tuple[DateFormat, ...] = (
    DateFormat("D Month YYYY", "{e} {B} {Y}"),
    DateFormat("DD Month YYYY", "{d} {B} {Y}"),
    DateFormat("d month yyyy", "{e} {B} {Y}", case="lower"),
    DateFormat("Month D, YYYY", "{B} {e}, {Y}"),
    DateFormat("Weekday, Month D, YYYY", "{A}, {B} {e}, {Y}"),
    DateFormat("Wkd D Mon YYYY", "{a} {e} {b} {Y}"),
    DateFormat("Mon D YYYY", "{b} {e} {Y}"),
    DateFormat("D MON YYYY", "{e} {b} {Y}", case="upper"),
    DateFormat("DD.MM.YYYY", "{d}.{m}.{Y}"),
    DateFormat("MM/DD/YYYY", "{m}/{d}/{Y}"),
    DateFormat("M/D/YY", "{n}/{e}/{y}"),
    DateFormat("YYYY.M.D", "{Y}.{n}.{e}"),
    DateFormat("YYYYMMDD", "{Y}{m}{d}"),
    DateFormat("DD-mon-YY", "{d}-{b}-{y}", case="lower"),
    DateFormat("YYYY-MM-DD", "{Y}-{m}-{d}"),
)
# The longest rendering: September, a two-digit day, each weekday once (20-26 Sept 2000).
MAX_SOURCE_LEN = max(len(f.render(dt.date(2000, 9, day))[0])
                     for f in FORMATS for day in range(20, 27))


class Vocab:
    """Characters <-> ids; id 0 is padding."""

    def __init__(self, specials: tuple[str, ...], chars: str):
        self.itos = [*specials, *chars]
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, length: int | None = None) -> list[int]:
        unknown = sorted({c for c in text if c not in self.stoi})
        if unknown:
            raise ValueError(f"{text!r} has characters outside the vocabulary: {unknown}")
        ids = [self.stoi[c] for c in text]
        if length is not None:
            if len(ids) > length:
                raise ValueError(f"{text!r} has {len(ids)} characters, more than the "
                                 f"{length} allowed")
            ids += [self.stoi[PAD]] * (length - len(ids))
        return ids

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids if self.itos[int(i)] not in (PAD, BOS))

    def labels(self, ids) -> list[str]:
        """One string per id, padding and start tokens included: a heatmap's row labels, which must
        match its rows even when a model that has barely trained emits ``<pad>`` mid-date. ``ids``: (T,)."""
        if isinstance(ids, torch.Tensor) and ids.dim() != 1:
            raise ValueError(f"labels needs one sequence of ids, shape (T,), got {tuple(ids.shape)}")
        return [self.itos[int(i)] for i in ids]


SOURCE_VOCAB = Vocab((PAD,), SOURCE_CHARS)
TARGET_VOCAB = Vocab((PAD, BOS), TARGET_CHARS)


@dataclass(frozen=True)
class DateExample:
    text: str             # the human-format source
    iso: str              # the target, YYYY-MM-DD
    format: str           # the DateFormat's name
    alignment: tuple      # 10 source positions, -1 where undefined


def random_example(rng: random.Random, fmt: DateFormat | None = None) -> DateExample:
    fmt = fmt if fmt is not None else rng.choice(FORMATS)
    lo, hi = fmt.years
    day = rng.randint(dt.date(lo, 1, 1).toordinal(), dt.date(hi, 12, 31).toordinal())
    date = dt.date.fromordinal(day)
    text, align = fmt.render(date)
    return DateExample(text, date.isoformat(), fmt.name, tuple(align))


def unique_examples(n: int, seed: int) -> list[DateExample]:
    """``n`` examples with distinct source strings, drawn deterministically from ``seed``."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        ex = random_example(rng)
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out


def encode_examples(examples: list[DateExample]) -> TensorDataset:
    """TensorDataset of (source ids (N, S) padded with 0, target ids (N, 10), alignment (N, 10))."""
    src = torch.tensor([SOURCE_VOCAB.encode(e.text, MAX_SOURCE_LEN) for e in examples])  # (N, S)
    tgt = torch.tensor([TARGET_VOCAB.encode(e.iso) for e in examples])                   # (N, 10)
    align = torch.tensor([list(e.alignment) for e in examples], dtype=torch.int64)       # (N, 10)
    return TensorDataset(src, tgt, align)


def encode_sources(texts: list[str]) -> torch.Tensor:
    """Source ids (N, S) for free text typed by a learner (clear error on unknown characters)."""
    return torch.tensor([SOURCE_VOCAB.encode(t, MAX_SOURCE_LEN) for t in texts])


@dataclass
class DatesData:
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    examples: dict  # split name -> list[DateExample], in the same order as the tensors


def make_dates(n_train: int = 20_000, n_val: int = 1_000, n_test: int = 2_000,
               seed: int = 0) -> DatesData:
    """Seeded train / val / test sets with no source string shared between splits."""
    pool = unique_examples(n_train + n_val + n_test, seed)
    parts = {"train": pool[:n_train], "val": pool[n_train:n_train + n_val],
             "test": pool[n_train + n_val:]}
    tensors = {k: encode_examples(v) for k, v in parts.items()}
    return DatesData(tensors["train"], tensors["val"], tensors["test"], parts)
