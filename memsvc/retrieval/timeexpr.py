"""Time expressions in English text, resolved against a reference time, without a model.

A small regular grammar rather than dateparser: it covers what conversations and questions
say ("yesterday", "last week", "3 days ago", "in the past three months", "last Friday",
"in May 2023", "8 May 2023", "May 8, 2023", "2023-05-08", "in 2023") and runs in microseconds
on every write and query. Each match becomes a half-open interval [start, end) in UTC. "when"
questions are recognised separately (`asks_when`): they want records that carry a time, not a
time range.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["TimeSpan", "asks_when", "find_times", "first_time"]

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS.pop("may", None)
_MONTHS["may"] = 5
_DAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a few": 3, "few": 3, "couple of": 2,
    "a couple of": 2, "several": 3,
}  # fmt: skip
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY_RE = "|".join(_DAYS)
_NUM_RE = r"\d+|" + "|".join(sorted((re.escape(k) for k in _NUM), key=len, reverse=True))

# Matched against the lower-cased text, without re.I: a case-blind alternation of month
# names scans about twice as slowly (measured: 33 -> 18 us a chat turn, 414 -> 212 us a
# LongMemEval turn of ~1,000 characters).
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("dmy", re.compile(
        rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}})\b"
    )),
    ("mdy", re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")),
    ("my", re.compile(rf"\b({_MONTH_RE})\.?,?\s+(?:of\s+)?(\d{{4}})\b")),
    ("ago", re.compile(rf"\b({_NUM_RE})\s+(day|week|month|year)s?\s+ago\b")),
    ("back", re.compile(rf"\b(?:past|last|previous)\s+({_NUM_RE})\s+(day|week|month|year)s?\b")),
    ("rel_day", re.compile(r"\b(yesterday|today|tonight|tomorrow|last night)\b")),
    ("rel_unit", re.compile(r"\b(last|this|next|past)\s+(week(?:end)?|month|year)\b")),
    ("rel_wday", re.compile(rf"\b(last|this|next|on)\s+({_DAY_RE})\b")),
    ("month", re.compile(rf"\b(?:in|during|since|of|last|this)\s+({_MONTH_RE})\b")),
    ("year", re.compile(r"\b(?:in|during|since|of|year)\s+((?:19|20)\d{2})\b")),
]  # fmt: skip
# A word every pattern above needs one of (or a digit): most turns name no time, and one
# scan for these rules them out (another 25% off a chat turn).
_CUE = re.compile(
    r"\d|\b(?:"
    + "|".join(sorted({*_MONTHS, *_DAYS, "ago", "yesterday", "today", "tonight", "tomorrow",
                       "night", "week", "weekend", "month", "year", "days", "weeks", "months",
                       "years"}, key=len, reverse=True))
    + r")\b"
)  # fmt: skip
_WHEN = re.compile(
    r"^\s*(?:and\s+|so\s+)?(?:when|since when|how long ago|how long|what (?:year|month|date|day|"
    r"time|week)|which (?:year|month|day|week)|in what (?:year|month))\b",
    re.I,
)


@dataclass(frozen=True)
class TimeSpan:
    start: datetime
    end: datetime
    text: str


def _day(d: datetime) -> datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_span(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _shift_months(d: datetime, months: int) -> datetime:
    m = d.month - 1 + months
    y = d.year + m // 12
    m = m % 12 + 1
    return d.replace(year=y, month=m, day=min(d.day, calendar.monthrange(y, m)[1]))


def _ago(n: int, unit: str, day: datetime) -> tuple[datetime, datetime]:
    """A distance back ("N units ago") is as loose as its unit: "two weeks ago" said on a
    Wednesday includes the Sunday 17 days back, which the calendar week two weeks back
    leaves out. So the span is centred on the day N units back, half a unit either side;
    "yesterday"-like distances (one or two days) stay exact."""
    if unit == "day":
        back = day - timedelta(days=n)
        slack = timedelta(days=0 if n <= 2 else 1)
        return back - slack, back + timedelta(days=1) + slack
    if unit == "week":
        back = day - timedelta(weeks=n)
        return back - timedelta(days=3), back + timedelta(days=4)
    if unit == "month":
        back = _shift_months(day, -n)
        return back - timedelta(days=15), back + timedelta(days=16)
    back = _shift_months(day, -12 * n)
    return back - timedelta(days=182), back + timedelta(days=183)


def _resolve(kind: str, m: re.Match[str], ref: datetime) -> tuple[datetime, datetime] | None:
    g = m.groups()
    day = _day(ref)
    if kind == "iso":
        start = datetime(int(g[0]), int(g[1]), int(g[2]), tzinfo=UTC)
        return start, start + timedelta(days=1)
    if kind in ("dmy", "mdy"):
        d, mon = (g[0], g[1]) if kind == "dmy" else (g[1], g[0])
        start = datetime(int(g[2]), _MONTHS[mon.lower().rstrip(".")], int(d), tzinfo=UTC)
        return start, start + timedelta(days=1)
    if kind == "my":
        return _month_span(int(g[1]), _MONTHS[g[0].lower().rstrip(".")])
    if kind == "ago":
        return _ago(int(g[0]) if g[0].isdigit() else _NUM[g[0].lower()], g[1].lower(), day)
    if kind == "back":  # "in the past three months": from then up to the end of today
        n = int(g[0]) if g[0].isdigit() else _NUM[g[0].lower()]
        unit = g[1].lower()
        if unit in ("day", "week"):
            start = day - timedelta(days=n * (7 if unit == "week" else 1))
        else:
            start = _shift_months(day, -n * (12 if unit == "year" else 1))
        return start, day + timedelta(days=1)
    if kind == "rel_day":
        off = {"yesterday": -1, "last night": -1, "today": 0, "tonight": 0, "tomorrow": 1}
        start = day + timedelta(days=off[g[0].lower()])
        return start, start + timedelta(days=1)
    if kind == "rel_unit":
        which, unit = g[0].lower(), g[1].lower()
        step = {"last": -1, "past": -1, "this": 0, "next": 1}[which]
        if unit.startswith("week"):
            monday = day - timedelta(days=day.weekday()) + timedelta(weeks=step)
            if unit == "weekend":
                return monday + timedelta(days=5), monday + timedelta(days=7)
            return monday, monday + timedelta(weeks=1)
        if unit == "month":
            start = _shift_months(day.replace(day=1), step)
            return start, _shift_months(start, 1)
        y = ref.year + step
        return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
    if kind == "rel_wday":
        which, wd = g[0].lower(), _DAYS[g[1].lower()]
        delta = (day.weekday() - wd) % 7
        if which == "next":
            start = day + timedelta(days=(wd - day.weekday()) % 7 or 7)
        elif which == "last":
            start = day - timedelta(days=delta or 7)
        else:  # "on Friday", "this Friday": the nearest one, looking back
            start = day - timedelta(days=delta)
        return start, start + timedelta(days=1)
    if kind == "month":
        mon = _MONTHS[g[0].lower().rstrip(".")]
        year = ref.year if mon <= ref.month else ref.year - 1  # the latest one not in the future
        return _month_span(year, mon)
    if kind == "year":
        y = int(g[0])
        return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
    return None


def find_times(text: str, ref: datetime) -> list[TimeSpan]:
    """Every time expression in `text`, resolved against `ref`, in text order; a span that
    overlaps an earlier (more specific) match is skipped."""
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer ("İ"): spans shift
        low = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    if not _CUE.search(low):
        return []
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, TimeSpan]] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(low):
            a, b = m.span()
            if any(a < e and s < b for s, e in taken):
                continue
            try:
                span = _resolve(kind, m, ref)
            except (ValueError, KeyError, OverflowError):
                continue  # "31 February 2023" and the like
            if span is None:
                continue
            taken.append((a, b))
            found.append((a, TimeSpan(span[0], span[1], text[a:b])))
    return [t for _, t in sorted(found, key=lambda x: x[0])]


def first_time(text: str, ref: datetime) -> TimeSpan | None:
    found = find_times(text, ref)
    return found[0] if found else None


def asks_when(question: str) -> bool:
    """A question whose answer is a time ("When did...", "How long ago...", "What year...")."""
    return bool(_WHEN.search(question))
