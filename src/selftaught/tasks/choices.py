"""Multiple-choice answers: which labelled choice a completion picks, as plain functions.

Models state a choice in many ways: "the answer is blotter (e).", "Answer: A) bank", "B. Walk",
"(C)", "the answer is most likely E", an answer on the line after an empty "the answer is (", and a
long rationale may say "the answer is" several times before its final one. A grader that accepts a
wrong choice poisons STaR's training set, so anything ambiguous is *no answer*:

* a hedge between two choices ("(C) country or (D) town") names two labels;
* a letter and a choice text that disagree ("B, a school building" when that is choice C's text);
* answer statements that name different choices ("The answer is a resort. The answer is city (e).");
* a choice that its own sentence rejects ("(c) understanding is not a suitable answer", "(b) is incorrect").

Every function is linear in the text and bounded: untrusted model output goes through here.
"""

from __future__ import annotations

import re

ANSWER_WINDOW = 200  # characters after a statement that can name the choice
MAX_STATEMENTS = 20  # statements looked at, from the last one back
NEXT_QUESTION = "\nQ:"  # a made-up next few-shot question never decides the answer

# "the answer is", "Answer:", "the correct option is", "the answer (most likely) is", "best choice:"
# "the most likely place to find a piano is": an answer given in words, without the word "answer"
_STATEMENT_RE = re.compile(
    r"\b(?:answer|option|choice)\b(?:[ \t]*\([^()\n]{0,40}\))?[ \t]*(?:is|was|would be|will be|should be|:|=)"
    r"|\bmost (?:likely|suitable|appropriate|fitting)\b[^.\n]{0,60}?\b(?:is|would be)\b",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|\n")
# the answer clause ends where the reasons or the rejected choices start: "(e), not (d)", "(e) because a desk ..."
# (a ";" that goes on to another choice, "B, city; or D, strip mall", is a list of candidates, not an end)
_CLAUSE_END_RE = re.compile(
    r"\b(?:because|since|but|not|while|whereas|which|instead)\b|;(?!\s*(?:or\b|\(?[A-Za-z]\b[).,:]))", re.IGNORECASE
)
_OR_RE = re.compile(r"\b(?:or|either)\b", re.IGNORECASE)
_PAREN_LABEL_RE = re.compile(r"\(([A-Za-z])\)")
_CLOSE_LABEL_RE = re.compile(r"(?<![\w(])([A-Za-z])\)")  # "A) bank"
_CAPITAL_RE = re.compile(r"(?<![\w'(])([A-Z])(?![\w'(])")  # "most likely E", "B, a school building"
_LEADING_LABEL_RE = re.compile(r"^\W{0,4}\(?([A-Za-z])(?:[).:]|$)")  # "b." opening a statement
_LABEL_LINE_RE = re.compile(r"^\W{0,4}\(?([A-Za-z])(?:[).:]\s*(.{0,100})|\)?)$")  # a last line "B. Walk", "(C)"
_WORDS_RE = re.compile(r"[^\W_]+")
# what a sentence says of the choice it names to reject it: "(c) is not the answer", "(b) is incorrect"
_REJECTION_RE = re.compile(
    r"\b(?:is|are|was|were|seems?|sounds?|looks?)\s+(?:not|never|incorrect|wrong|false|invalid|unlikely|impossible"
    r"|unsuitable|inappropriate|irrelevant)\b|\b(?:isn|aren|wasn|doesn)['\u2019]t\b|\b(?:does|do|can)\s*not\b",
    re.IGNORECASE,
)
_LABEL_MARK_RE = re.compile(r"\([A-Za-z]\)|(?<![\w(])[A-Za-z]\)")  # "(c)", "c)"
# words an answer clause may hold besides a bare letter ("Therefore, the answer is most likely option E")
FILLER_WORDS = frozenset(
    "the a an answer answers is are must would will should be so therefore thus hence then most likely probably "
    "definitely clearly obviously option options choice choices letter correct best right final my it this that "
    "one i choose pick select go with here of given or".split()
)


def _labels_in(window: str, labels: set[str]) -> set[str]:
    """Labels a window names: "(x)", "x)", a standalone capital letter ("A" and "I" only before
    punctuation, since they are also words), or a letter opening it ("the answer is b.")."""
    found = {m.group(1).lower() for m in _PAREN_LABEL_RE.finditer(window)}
    found |= {m.group(1).lower() for m in _CLOSE_LABEL_RE.finditer(window)}
    for match in _CAPITAL_RE.finditer(window):
        after = window[match.end() : match.end() + 1]
        listed = _OR_RE.match(window, match.end() + 1) or _OR_RE.search(
            window[max(0, match.start() - 7) : match.start()]
        )
        if match.group(1) not in "AI" or after in ("", ".", ",", ":", ";", ")", "!", "?") or listed:
            found.add(match.group(1).lower())
    lead = _LEADING_LABEL_RE.match(window.strip())
    if lead:
        found.add(lead.group(1).lower())
    return found & labels


def _texts_in(window: str, choices: list[tuple[str, str]]) -> set[str]:
    """Labels whose choice text appears in the window as whole words; a text found only inside
    another found text ("desk" in "desk drawer") does not count."""
    words = [w.lower() for w in _WORDS_RE.findall(window)]
    joined = f" {' '.join(words)} "
    spans = []
    for label, text in choices:
        needle = " ".join(w.lower() for w in _WORDS_RE.findall(text))
        if not needle:
            continue
        at = joined.find(f" {needle} ")
        while at >= 0:
            spans.append((at, at + len(needle) + 1, label.lower()))
            at = joined.find(f" {needle} ", at + 1)
    inside = {
        k for k, (s1, e1, _) in enumerate(spans) for s2, e2, _ in spans if s2 <= s1 and e1 <= e2 and e2 - s2 > e1 - s1
    }
    return {label for k, (_, _, label) in enumerate(spans) if k not in inside}


def _outside_choices(window: str, choices: list[tuple[str, str]]) -> str:
    """The window with each choice's own text blanked out: "or" in "bread or rolls" is no hedge."""
    lowered = window.lower()
    for _, text in choices:
        needle = text.strip().lower()
        if needle:
            lowered = lowered.replace(needle, " " * len(needle))
    return lowered


def _outside_spans(pattern: re.Pattern, window: str, choices: list[tuple[str, str]]) -> re.Match | None:
    """The first match of ``pattern`` in ``window`` that is not part of a choice's own text ("did not
    understand")."""
    lowered = window.lower()
    spans = []
    for _, text in choices:
        needle = text.strip().lower()
        at = lowered.find(needle) if needle else -1
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = lowered.find(needle, at + 1)
    for match in pattern.finditer(window):
        if not any(start <= match.start() < end for start, end in spans):
            return match
    return None


def _clause_end(window: str, choices: list[tuple[str, str]]) -> int:
    """Where the answer clause ends: the first "because", "not", "but", ... that is not part of a choice's
    own text ("did not understand")."""
    match = _outside_spans(_CLAUSE_END_RE, window, choices)
    return match.start() if match else len(window)


def decide(window: str, choices: list[tuple[str, str]]) -> tuple[bool, str | None]:
    """(whether the window names anything, the label it picks or None when it hedges or contradicts).

    >>> choices = [("a", "bank"), ("b", "school"), ("c", "school building")]
    >>> decide("B, a school building", choices)
    (True, None)
    >>> decide("(b) school or (c) school building", choices)
    (True, None)
    >>> decide("c) school building", choices)
    (True, 'c')
    >>> decide("clear from the question", choices)
    (False, None)
    """
    labels = {label.lower() for label, _ in choices}
    clause = window[: _clause_end(window, choices)]
    letters, texts = _labels_in(clause, labels), _texts_in(clause, choices)
    if (not letters and not texts) or _rejected(window, choices):
        return False, None  # "(b) is not a valid option" states no answer
    if len(letters) > 1 or (not letters and len(texts) > 1):
        return True, None
    if len(letters | texts) > 1 and _OR_RE.search(_outside_choices(clause, choices)):
        return True, None  # "(a) maine or boston": a hedge, even when the letter agrees with one text
    if letters:
        (letter,) = letters
        if not texts and any(text.strip() for _, text in choices) and _names_something_else(clause):
            return True, None  # "a charm (c)" when (c) is "bag": the letter names a thing that is no choice
        return True, letter if not texts or letter in texts else None
    return True, next(iter(texts))


def _rejected(window: str, choices: list[tuple[str, str]]) -> bool:
    """Whether ``window`` says the choice it opens with is wrong: "(c) understanding is not a suitable
    answer", "(b) is incorrect", "(c) feel better: this answer is incorrect". Only labels, choice texts and
    filler ("this answer") may come before the rejection ("(a) maine, which is not a city" does not reject
    (a)), and a rejection naming another choice is a contrast ("(c), it is not (a)" picks (c)).

    >>> choices = [("a", "maine"), ("b", "boston")]
    >>> _rejected("(b) boston is not a suitable answer", choices), _rejected("(a) is incorrect", choices)
    (True, True)
    >>> _rejected("(a) maine, because boston is not on the coast", choices), _rejected("(a), it is not B", choices)
    (False, False)
    """
    match = _outside_spans(_REJECTION_RE, window, choices)
    if match is None:
        return False
    before = _LABEL_MARK_RE.sub(" ", _outside_choices(window[: match.start()], choices))
    if not all(len(w) == 1 or w in FILLER_WORDS for w in _WORDS_RE.findall(before)):
        return False
    rest = window[match.end() :]
    sentence_end = _SENTENCE_END_RE.search(rest)
    rest = rest[: sentence_end.start()] if sentence_end else rest
    rest = rest[: _clause_end(rest, choices)]
    return not _labels_in(rest, {label.lower() for label, _ in choices}) and not _texts_in(rest, choices)


def _names_something_else(clause: str) -> bool:
    """Whether a clause holding a letter and no choice's text has words beyond the letter and filler
    ("is most likely (e)", "option B"): then it names something that is not the letter's choice."""
    words = {w.lower() for w in _WORDS_RE.findall(clause) if len(w) > 1}  # single letters name no thing
    return bool(words - FILLER_WORDS)


def _window(text: str, at: int) -> str:
    """The rest of the statement's sentence; the next line when its own line says nothing ("is (")."""
    window = text[at : at + ANSWER_WINDOW]
    head, newline, rest = window.partition("\n")
    if newline and head.strip(" \t:(") == "":
        window = head + " " + rest.lstrip("\n")
    end = _SENTENCE_END_RE.search(window)
    return window[: end.start()] if end else window


def extract_choice(text: str, choices: list[tuple[str, str]]) -> str | None:
    """The label a completion picks, from its answer statements that name a choice (all of them must name
    the same one); without one, from a last line that is a label ("B. Walk", "(C)"), or the one label the
    text mentions; None when it names none, hedges, rejects the choice it names, or its letter and choice
    text disagree. Labels are lowercased.

    >>> choices = [("a", "shirt pocket"), ("b", "basket"), ("c", "desk")]
    >>> extract_choice("Therefore, the answer is basket (b).", choices)
    'b'
    >>> extract_choice("So the answer is Basket.", choices)
    'b'
    >>> extract_choice("Answer: C) desk", choices)
    'c'
    >>> extract_choice("The answer is (a) shirt pocket or (c) desk.", choices) is None
    True
    >>> extract_choice("(a) is wrong, (c) fits.", choices) is None
    True
    >>> extract_choice("The answer is a basket. The answer is desk (c).", choices) is None
    True
    """
    text = text.split(NEXT_QUESTION, 1)[0].replace("**", "")
    statements = list(_STATEMENT_RE.finditer(text))[-MAX_STATEMENTS:]
    picked = set()  # the label of each statement that names a choice (None: one that hedges or contradicts)
    for statement in statements:
        named, label = decide(_window(text, statement.end()), choices)
        if named:
            picked.add(label)
    if picked:
        return picked.pop() if len(picked) == 1 else None  # two statements that disagree: no answer
    # a bare "A:" is the prompt's answer cue echoed (chat models end with it), not choice (a)
    lines = [line for line in text[-4 * ANSWER_WINDOW :].split("\n") if line.strip() not in ("", "A:", "Q:")]
    labels = {label.lower() for label, _ in choices}
    last = _LABEL_LINE_RE.match(lines[-1].strip()) if lines else None
    if last and last.group(1).lower() in labels:
        rest = (last.group(2) or "").strip(" .!")
        if not rest or _texts_in(rest, choices):  # a label alone, or with a choice's text (checked to agree)
            return decide(lines[-1], choices)[1]
    found = [m for m in _PAREN_LABEL_RE.finditer(text) if m.group(1).lower() in labels]
    if len({m.group(1).lower() for m in found}) != 1:
        return None
    # the one label mentioned, checked in its sentence as a statement would be: "must be a charm (c)" is no (c),
    # and "(c) is not a suitable answer" rejects it
    end = found[-1].end()
    if _rejected(_window(text, found[-1].start()), choices):
        return None
    starts = [m.end() for m in _SENTENCE_END_RE.finditer(text, max(0, end - ANSWER_WINDOW), found[-1].start())]
    return decide(text[starts[-1] if starts else max(0, end - ANSWER_WINDOW) : end], choices)[1]
