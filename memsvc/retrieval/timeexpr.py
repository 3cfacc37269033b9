"""Time expressions in English text, resolved against a reference time, without a model.

A small regular grammar rather than dateparser: it covers what conversations and questions
say ("yesterday", "last week", "3 days ago", "in the past three months", "last Friday",
"in May 2023", "8 May 2023", "May 8, 2023", "2023-05-08", "in 2023", "on June 5th",
"on 2/15", "in early May", "last summer", "two weekends ago", "in two weeks", "for 3 years
now", "the other day", "this morning", "over the weekend", "I just ...", "recently") and runs in
microseconds on every write and query. Each match becomes a half-open interval [start, end)
in UTC. A date without a year, a month or a season is the latest one not after the
reference time, as people mean it. "when" questions are recognised separately
(`asks_when`): they want records that carry a time, not a time range, so what the grammar
misses in a record ("I've had them for 3 years now") is a record such a question cannot find
by its time.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["GRAMMAR_VERSION", "TimeSpan", "asks_when", "find_times", "first_time"]

# Stored with each record's resolved anchor (retrieval.analyze.stored_anchor): raise it with
# any change that makes some text resolve differently, and stored anchors of an older grammar
# are resolved again when their cube loads.
GRAMMAR_VERSION = 1

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS.pop("may", None)
_MONTHS["may"] = 5
_DAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
# Weekdays as people shorten them ("last Fri", "on Tues"): counted only capitalised, since
# "sun", "sat" and "wed" are words too (`_CAPITALISED`).
_DAY_ABBR = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3,
             "fri": 4, "sat": 5, "sun": 6}  # fmt: skip
_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a few": 3, "few": 3, "couple of": 2,
    "a couple of": 2, "several": 3,
}  # fmt: skip
# Seasons by the months they start and end (meteorological, northern hemisphere): winter
# starts in December and ends in March of the next year.
_SEASONS = {
    "spring": (3, 6),
    "summer": (6, 9),
    "fall": (9, 12),
    "autumn": (9, 12),
    "winter": (12, 3),
}
_SEASON_RE = "|".join(_SEASONS)
_UNIT_RE = r"day|weekend|week|fortnight|month|year"
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY_RE = "|".join([*_DAYS, *sorted(_DAY_ABBR, key=len, reverse=True)])
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
    ("mdy_num", re.compile(r"\b(\d{1,2})/(\d{1,2})/((?:19|20)?\d{2})\b")),
    ("md_num", re.compile(
        r"\b(?:on|by|since|from|until|till|before|after)\s+(\d{1,2})/(\d{1,2})\b(?!/)"
    )),
    ("part", re.compile(
        rf"\b(early|mid|late|the (?:beginning|start|middle|end) of)[\s-]+({_MONTH_RE})\b"
        r"(?:\.?,?\s+(\d{4})\b)?"
    )),
    ("my", re.compile(rf"\b({_MONTH_RE})\.?,?\s+(?:of\s+)?(\d{{4}})\b")),
    ("md", re.compile(
        rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?!\s*(?::|am\b|pm\b))"
    )),
    ("dm", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b")),
    ("season_y", re.compile(rf"\b({_SEASON_RE})\s+(?:of\s+)?((?:19|20)\d{{2}})\b")),
    ("season", re.compile(
        rf"\b(last|this|next|past|in the|during the|over the)\s+({_SEASON_RE})\b"
    )),
    ("ago", re.compile(rf"\b({_NUM_RE})\s+({_UNIT_RE})s?\s+ago\b")),
    ("ahead", re.compile(rf"\b(?:in\s+)?({_NUM_RE})\s+({_UNIT_RE})s?\s+(later|from now)\b")),
    ("within", re.compile(rf"\bin\s+({_NUM_RE})\s+({_UNIT_RE})s?\b")),
    ("back", re.compile(rf"\b(?:past|last|previous)\s+({_NUM_RE})\s+(day|week|month|year)s?\b")),
    ("lasting", re.compile(
        rf"\b(?:for\s+(?:about\s+|almost\s+|over\s+|nearly\s+)?({_NUM_RE})\s+(day|week|month|year)s?"
        rf"|({_NUM_RE})\s+(day|week|month|year)s?\s+now)\b"
    )),
    ("rel_day", re.compile(
        r"\b(the day before yesterday|the day after tomorrow|yesterday|today|tonight|tomorrow"
        r"|last night|this morning|this afternoon|this evening)\b"
    )),
    ("other_day", re.compile(r"\b(the other day)\b")),
    ("recent", re.compile(r"\b(?:(?:i|we|he|she|they)(?:'ve| have| had)?\s+just|recently)\b")),
    ("rel_unit", re.compile(r"\b(last|this|next|past)\s+(week(?:end)?|month|year)\b")),
    ("weekend", re.compile(r"\b(?:over|during|on|at)\s+the\s+weekend\b")),
    ("rel_wday", re.compile(rf"\b(last|this|next|on)\s+({_DAY_RE})\b(?!\.\w)")),
    # a day of the month said alone: "on the 15th" is the latest 15th not ahead
    ("dom", re.compile(
        r"\bon the (\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:of|floor|day|time|try|attempt|page|"
        r"step|level|place|round|lap|grade|hole|row|street|st|avenue|anniversary|birthday|"
        r"chapter|episode|game|inning|mile|week|month|year|century|percentile)\b)"
    )),
    ("month", re.compile(rf"\b(?:in|during|since|of|last|this)\s+({_MONTH_RE})\b")),
    ("year", re.compile(r"\b(?:in|during|since|of|year)\s+((?:19|20)\d{2})\b")),
]  # fmt: skip
# Month names that are also common words: without a year they count only capitalised
# ("May 5th", not "you may 2x it"; "March 3", not "march 3 miles").
_WORDLIKE_MONTHS = frozenset({"may", "march", "mar"})
# A word every pattern above needs one of (or a digit): most turns name no time, and one
# scan for these rules them out (another 25% off a chat turn).
_CUE = re.compile(
    r"\d|\b(?:"
    + "|".join(sorted({*_MONTHS, *_DAYS, *_DAY_ABBR, *_SEASONS, "ago", "yesterday", "today",
                       "tonight", "tomorrow", "night", "day", "week", "weekend", "weekends",
                       "fortnight", "fortnights", "month", "year", "days", "weeks", "months",
                       "years", "morning", "afternoon", "evening", "just", "recently"},
                      key=len, reverse=True))
    + r")\b"
)  # fmt: skip
# What kinds of cue word each pattern needs (d: a digit, m: a month, s: a season, u: a unit,
# a: "ago", r: a day said in words, w: a weekday, j: "just" or "recently"): a pattern whose
# cues the text lacks is not run (a long LongMemEval turn names digits and units, rarely
# months or seasons). "just" had counted as a digit, running every date pattern for it.
_CUE_KIND = (
    {m: "m" for m in _MONTHS}
    | {d: "w" for d in (*_DAYS, *_DAY_ABBR)}
    | {s: "s" for s in _SEASONS}
    | {"ago": "a"}
    | {w: "r" for w in ("yesterday", "today", "tonight", "tomorrow", "night", "day", "morning",
                        "afternoon", "evening")}
    | {w: "u" for w in ("day", "days", "week", "weeks", "weekend", "weekends", "fortnight",
                        "fortnights", "month", "months", "year", "years")}
)  # fmt: skip
_CUE_KIND["day"] = "u"  # "3 day trip", "the other day"
_CUE_KIND["just"] = _CUE_KIND["recently"] = "j"
_NEEDS: dict[str, set[str]] = {
    "iso": {"d"}, "mdy_num": {"d"}, "md_num": {"d"}, "dmy": {"d", "m"}, "mdy": {"d", "m"},
    "part": {"m"}, "my": {"d", "m"},
    "md": {"d", "m"}, "dm": {"d", "m"}, "season_y": {"s", "d"}, "season": {"s"},
    "ago": {"a", "u"}, "ahead": {"u"}, "within": {"u"}, "back": {"u"}, "lasting": {"u"},
    "rel_day": {"r"}, "other_day": {"u"}, "recent": {"j"}, "rel_unit": {"u"}, "weekend": {"u"},
    "rel_wday": {"w"}, "dom": {"d"}, "month": {"m"}, "year": {"d"},
}  # fmt: skip
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


def _ago(n: int, unit: str, day: datetime, sign: int = -1) -> tuple[datetime, datetime]:
    """A distance back ("N units ago"; `sign` 1: ahead, "N units later") is as loose as its
    unit: "two weeks ago" said on a Wednesday includes the Sunday 17 days back, which the
    calendar week two weeks back leaves out. So the span is centred on the day N units
    away, half a unit either side; "yesterday"-like distances (one or two days) stay exact,
    and "two weekends ago" is that weekend (Friday to Sunday)."""
    if unit == "fortnight":
        n, unit = 2 * n, "week"
    if unit == "weekend":
        saturday = day - timedelta(days=day.weekday() - 5) + timedelta(weeks=sign * n)
        return saturday - timedelta(days=1), saturday + timedelta(days=2)
    if unit == "day":
        back = day + timedelta(days=sign * n)
        slack = timedelta(days=0 if n <= 2 else 1)
        return back - slack, back + timedelta(days=1) + slack
    if unit == "week":
        back = day + timedelta(weeks=sign * n)
        return back - timedelta(days=3), back + timedelta(days=4)
    if unit == "month":
        back = _shift_months(day, sign * n)
        return back - timedelta(days=15), back + timedelta(days=16)
    back = _shift_months(day, sign * 12 * n)
    return back - timedelta(days=182), back + timedelta(days=183)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUM[word]


def _latest_date(month: int, d: int, day: datetime) -> datetime:
    """The latest `month`/`d` not after `day` (a date said without its year)."""
    start = datetime(day.year, month, d, tzinfo=UTC) if (month, d) != (2, 29) else None
    if start is None or start > day:
        year = day.year - 1
        while (month, d) == (2, 29) and not calendar.isleap(year):
            year -= 1
        start = datetime(year, month, d, tzinfo=UTC)
    return start


def _season_span(name: str, year: int) -> tuple[datetime, datetime]:
    first, after = _SEASONS[name]
    end_year = year + (after < first)
    return datetime(year, first, 1, tzinfo=UTC), datetime(end_year, after, 1, tzinfo=UTC)


def _season(which: str, name: str, day: datetime) -> tuple[datetime, datetime]:
    """ "last summer": the latest one over; "next": the first to start; "this": the one of
    the season's year (a winter's year is its December's); "in/over the": the latest
    begun, the current one included."""
    spans = [_season_span(name, y) for y in range(day.year - 2, day.year + 2)]
    if which in ("last", "past"):
        return [s for s in spans if s[1] <= day][-1]
    if which == "next":
        return next(s for s in spans if s[0] > day)
    if which == "this":
        year = day.year - 1 if name == "winter" and day.month < _SEASONS[name][1] else day.year
        return _season_span(name, year)
    return [s for s in spans if s[0] <= day][-1]


_PARTS = {"early": (1, 11), "mid": (11, 21), "late": (21, 32)}
_PARTS.update(
    {"the beginning of": _PARTS["early"], "the start of": _PARTS["early"]}
    | {"the middle of": _PARTS["mid"], "the end of": _PARTS["late"]}
)
_DAY_OFFSETS = {
    "the day before yesterday": -2, "yesterday": -1, "last night": -1, "today": 0,
    "tonight": 0, "this morning": 0, "this afternoon": 0, "this evening": 0, "tomorrow": 1,
    "the day after tomorrow": 2,
}  # fmt: skip


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
    if kind == "part":  # "in early May": the month's first, middle or last ten days
        mon = _MONTHS[g[1].rstrip(".")]
        year = int(g[2]) if g[2] else (day.year if mon <= day.month else day.year - 1)
        first, after = _PARTS[" ".join(g[0].split())]
        last = calendar.monthrange(year, mon)[1] + 1
        return (
            datetime(year, mon, first, tzinfo=UTC),
            datetime(year, mon, min(after, last) - 1, tzinfo=UTC) + timedelta(days=1),
        )
    if kind == "mdy_num":  # US order, as the dates people type in chats are
        year = int(g[2]) + (2000 if len(g[2]) == 2 else 0)
        start = datetime(year, int(g[0]), int(g[1]), tzinfo=UTC)
        return start, start + timedelta(days=1)
    if kind == "md_num":
        start = _latest_date(int(g[0]), int(g[1]), day)
        return start, start + timedelta(days=1)
    if kind in ("md", "dm"):
        mon, d = (g[0], g[1]) if kind == "md" else (g[1], g[0])
        start = _latest_date(_MONTHS[mon.rstrip(".")], int(d), day)
        return start, start + timedelta(days=1)
    if kind == "season_y":
        return _season_span(g[0], int(g[1]))
    if kind == "season":
        return _season(g[0].split()[0], g[1], day)
    if kind == "ago":
        return _ago(_count(g[0]), g[1], day)
    if kind in ("ahead", "within"):
        return _ago(_count(g[0]), g[1], day, sign=1)
    if kind == "lasting":  # "for 3 years (now)": from then up to the end of today
        n, unit = (g[0], g[1]) if g[0] else (g[2], g[3])
        return _ago(_count(n), unit, day)[0], day + timedelta(days=1)
    if kind == "weekend":  # "over the weekend": this one, or the one just past
        saturday = day - timedelta(days=day.weekday() - 5)
        if day.weekday() < 5:
            saturday -= timedelta(weeks=1)
        return saturday, saturday + timedelta(days=2)
    if kind == "back":  # "in the past three months": from then up to the end of today
        n = int(g[0]) if g[0].isdigit() else _NUM[g[0].lower()]
        unit = g[1].lower()
        if unit in ("day", "week"):
            start = day - timedelta(days=n * (7 if unit == "week" else 1))
        else:
            start = _shift_months(day, -n * (12 if unit == "year" else 1))
        return start, day + timedelta(days=1)
    if kind == "recent":
        return day - timedelta(days=3), day + timedelta(days=1)
    if kind in ("rel_day", "other_day"):
        if g[0] == "the other day":  # a few days back, within the week
            return day - timedelta(days=7), day
        start = day + timedelta(days=_DAY_OFFSETS[g[0]])
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
    if kind == "dom":  # the latest such day of a month, this month's if it is past
        d = int(g[0])
        if not 1 <= d <= 31:
            return None
        month = day.replace(day=1)
        while d > calendar.monthrange(month.year, month.month)[1] or month.replace(day=d) > day:
            month = _shift_months(month, -1)
        start = month.replace(day=d)
        return start, start + timedelta(days=1)
    if kind == "rel_wday":
        which, wd = g[0].lower(), {**_DAYS, **_DAY_ABBR}[g[1].lower()]
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
    cues = {_CUE_KIND.get(w, "d") for w in _CUE.findall(low)}
    if not cues:
        return []
    # Characters already inside a span: checking a match against a mask costs its own length,
    # where checking it against every earlier span cost their number (a 32 KB message of
    # "May 5 May 5 ..." names 5,461 dates: 1 s of one core per indexing, 28 ms now).
    taken = bytearray(len(text))
    found: list[tuple[int, TimeSpan]] = []
    for kind, pattern in _PATTERNS:
        if not _NEEDS[kind] <= cues:
            continue
        for m in pattern.finditer(low):
            a, b = m.span()
            if any(taken[a:b]):
                continue
            if kind in _CAPITALISED and not _said_as_name(m, *_CAPITALISED[kind], text):
                continue
            try:
                span = _resolve(kind, m, ref)
            except (ValueError, KeyError, OverflowError):
                continue  # "31 February 2023" and the like
            if span is None:
                continue
            taken[a:b] = b"\x01" * (b - a)
            found.append((a, TimeSpan(span[0], span[1], text[a:b])))
    return [t for _, t in sorted(found, key=lambda x: x[0])]


# Kinds with a name that is also a common word, which counts only capitalised: the group
# holding it and those words (a month without its year: "May 5th", not "you may 2x it"; a
# shortened weekday: "last Fri", not "on sun loungers").
_CAPITALISED: dict[str, tuple[int, frozenset[str]]] = {
    "md": (1, _WORDLIKE_MONTHS),
    "dm": (2, _WORDLIKE_MONTHS),
    "part": (2, _WORDLIKE_MONTHS),
    "rel_wday": (2, frozenset(_DAY_ABBR)),
}


def _said_as_name(m: re.Match[str], group: int, wordlike: frozenset[str], text: str) -> bool:
    word = text[m.start(group) : m.end(group)]
    return word.lower().rstrip(".") not in wordlike or word[:1].isupper()


def first_time(text: str, ref: datetime) -> TimeSpan | None:
    found = find_times(text, ref)
    return found[0] if found else None


def asks_when(question: str) -> bool:
    """A question whose answer is a time ("When did...", "How long ago...", "What year...")."""
    return bool(_WHEN.search(question))
