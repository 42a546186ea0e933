"""Multiple-choice answers: which labelled choice a completion picks, as plain functions.

Models state a choice in many ways: "the answer is blotter (e).", "Answer: A) bank", "B. Walk",
"(C)", "the answer is most likely E", "\\boxed{(C) city}", an answer on the line after an empty "the
answer is (", and a long rationale may say "the answer is" several times, remark on each labelled choice
("Option (C) is a possibility") and hedge before its conclusion ("Therefore, the answer is (C)"), which
then decides. A grader that accepts a wrong choice poisons STaR's training set, so anything ambiguous is
*no answer*:

* a hedge between two choices ("(C) country or (D) town", "\\boxed{(C)} or \\boxed{(D)}") names two labels;
* a letter and a choice text that disagree ("B, a school building" when that is choice C's text);
* answer statements or boxes that name different choices, unless a conclusion settles between remarks
  and hedges ("The answer is a resort. The answer is city (e)."; "I pick \\boxed{A}. Thus, it is (B).");
* a choice that its own sentence rejects ("(c) understanding is not a suitable answer", "(b) is incorrect",
  "it cannot be \\boxed{A}").

Every function is linear in the text and bounded: untrusted model output goes through here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from selftaught.tasks.answers import BOXED_RE

ANSWER_WINDOW = 200  # characters after a statement that can name the choice
MAX_STATEMENTS = 20  # statements looked at, from the last one back
NEXT_QUESTION = "\nQ:"  # a made-up next few-shot question never decides the answer

# "the answer is", "Answer:", "the correct option is", "the answer (most likely) is", "best choice:"
# "the most likely place to find a piano is": an answer given in words, without the word "answer"
_STATEMENT_RE = re.compile(
    r"(?<!each answer )(?<!each )\b(?:answer|option|choice)\b(?:[ \t]*\([^()\n]{0,40}\))?[ \t]*"
    r"(?:is|was|would be|will be|should be|:|=)"
    r"|\bmost (?:likely|suitable|appropriate|fitting)\b(?:(?!\bwho\b)[^.\n]){0,60}?\b(?:is|would be)\b",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|\n")
# the answer clause ends where the reasons or the rejected choices start: "(e), not (d)", "(e) because a desk ..."
# (a ";" that goes on to another choice, "B, city; or D, strip mall", is a list of candidates, not an end)
_CLAUSE_END_RE = re.compile(
    r"\b(?:because|since|but|not|while|whereas|which|instead)\b|;(?!\s*(?:or\b|\(?[A-Za-z]\b[).,:]))", re.IGNORECASE
)
# a statement that concludes ("Therefore, the correct answer is (C)") outranks the per-choice remarks before it
_CONCLUSION_RE = re.compile(
    r"\b(?:therefore|thus|so|hence|in conclusion|overall|ultimately|consequently|in summary|based on|final"
    r"|considering|given|conclude|in the end|after (?:evaluating|considering|analy[sz]ing|reviewing))\b",
    re.IGNORECASE,
)
_ARTICLES = frozenset(("a", "an", "the"))
_OR_RE = re.compile(r"\b(?:or|either)\b", re.IGNORECASE)
_PAREN_LABEL_RE = re.compile(r"\(([A-Za-z])\)")
_CLOSE_LABEL_RE = re.compile(r"(?<![\w(])([A-Za-z])\)")  # "A) bank"
_CAPITAL_RE = re.compile(r"(?<![\w'(])([A-Z])(?![\w'(])")  # "most likely E", "B, a school building"
_LEADING_LABEL_RE = re.compile(r"^\W{0,4}\(?([A-Za-z])(?:[).:]|$)")  # "b." opening a statement
_LABEL_LINE_RE = re.compile(r"^\W{0,4}\(?([A-Za-z])(?:[).:]\s*(.{0,100})|\)?)$")  # a last line "B. Walk", "(C)"
_WORDS_RE = re.compile(r"[^\W_]+")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}")  # "\boxed{(C) \text{city}}"
_OPENING_LABEL_RE = re.compile(r"\s*(?:[-*\u2022]\s*)?\(?[A-Za-z]\)")  # a sentence or list item that opens with "(C)"
# a negation just before a box, at most two words away: "is not \boxed{A}", "I would not choose \boxed{A}" (but
# not "the choice for clothes that aren't pants is:\n\boxed{C}")
_NEGATION_RE = re.compile(
    r"(?:\b(?:not|never|cannot|no)|n['\u2019]t)\b(?:\s+(?!(?:is|are|was|were)\b)[A-Za-z]+){0,2}\s*$", re.IGNORECASE
)
_LATEX_MATH_RE = re.compile(r"\\[()\[\]]")  # "\(\boxed{C}\)"
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
    "one i choose pick select go with here of given or to".split()
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
    """Labels whose choice text appears in the window as whole words, articles aside ("eat in a restaurant"
    names "eat in restaurant"); a text found only inside another found text ("desk" in "desk drawer") does
    not count."""
    words = [w.lower() for w in _WORDS_RE.findall(window) if w.lower() not in _ARTICLES]
    joined = f" {' '.join(words)} "
    spans = []
    for label, text in choices:
        needle = " ".join(w.lower() for w in _WORDS_RE.findall(text) if w.lower() not in _ARTICLES)
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


def _choice_pattern(text: str, own_period: bool) -> re.Pattern | None:
    """A choice's text word by word, case aside ("washington d.c." finds "Washington D.C"); with
    ``own_period``, a text ending in "." keeps it ("d.c." then spans its last period)."""
    words = _WORDS_RE.findall(text)
    if not words:
        return None
    period = r"\." if own_period and text.rstrip().endswith(".") else ""
    return re.compile(r"\b" + r"\W+".join(map(re.escape, words)) + r"\b" + period, re.IGNORECASE)


def _blanked(window: str, choices: list[tuple[str, str]]) -> str:
    """The window with each choice's own text blanked out ("~", so "a floor" does not become a bare "a"), case
    kept elsewhere: the "D" of "(E) Washington D.C." is part of a choice, not a second label."""
    for _, text in choices:
        pattern = _choice_pattern(text, own_period=False)  # "Washington D.C" cut at its period still counts
        if pattern:
            window = pattern.sub(lambda match: "~" * len(match.group(0)), window)
    return window


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
    letters, texts = _labels_in(_blanked(clause, choices), labels), _texts_in(clause, choices)
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


def _window(text: str, at: int, choices: list[tuple[str, str]] = ()) -> str:
    """The rest of the statement's sentence; the next line when its own line says nothing ("is ("). A period
    inside a choice's own text ("Washington D.C. or (A) ...") does not end the sentence."""
    window = text[at : at + ANSWER_WINDOW]
    head, newline, rest = window.partition("\n")
    if newline and head.strip(" \t:(") == "":
        window = head + " " + rest.lstrip("\n")
    inside = _choice_spans(window, choices)
    end = next((m for m in _SENTENCE_END_RE.finditer(window) if not any(s <= m.start() < e for s, e in inside)), None)
    return window[: end.start()] if end else window


def _choice_spans(window: str, choices: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Where the window holds a choice's text, word by word and case aside."""
    spans = []
    for _, text in choices:
        pattern = _choice_pattern(text, own_period=True)
        if pattern:
            spans += [m.span() for m in pattern.finditer(window)]
    return spans


class Claim(NamedTuple):
    """An answer statement or a boxed answer that names a choice."""

    at: int  # where it starts in the text
    label: str | None  # None: it hedges or contradicts itself
    concludes: bool  # in a concluding sentence: "Therefore, the answer is (C)", "Thus, the best choice is:\n\\boxed{D}"
    remark: bool  # a statement weighing one labelled choice: "(C) farm: this option is possible", "Option (C) is"


class _Reading(NamedTuple):
    """What a statement read: its window, whether it named a choice or rejected one, where its clause ends."""

    start: int
    end: int
    named: bool
    rejected: bool
    clause_end: int


def _claims(text: str, choices: list[tuple[str, str]]) -> list[Claim]:
    """Each answer statement and each boxed answer that names a choice, in text order. The boxes are blanked
    out of the text (positions kept) and their content read as any text ("the answer is \\boxed{(B)}"); a
    box inside a statement's answer clause is a claim that concludes nothing (its statement may), one
    that a statement rejects or reads past ("(A), because \\boxed{B} is wrong") none, and a box no
    statement reads ("\\boxed{(C) city}" alone) a claim of its own unless its sentence rejects it."""
    boxes = list(BOXED_RE.finditer(text))[-MAX_STATEMENTS:]
    plain = BOXED_RE.sub(lambda box: box.group(1) + " " * len("\\boxed{}"), text)  # "or \\boxed{A}": "or A"
    claims, readings = [], []
    for statement in list(_STATEMENT_RE.finditer(plain))[-MAX_STATEMENTS:]:
        window = _window(plain, statement.end(), choices)
        named, label = decide(window, choices)
        clause_end = statement.end() + _clause_end(window, choices)
        rejected = _rejected(window, choices)
        readings.append(_Reading(statement.end(), statement.end() + len(window), named, rejected, clause_end))
        if named:
            sentence = _SENTENCE_END_RE.split(plain[max(0, statement.start() - ANSWER_WINDOW) : statement.start()])[-1]
            concludes = bool(_CONCLUSION_RE.search(sentence))
            remark = bool(_LABEL_MARK_RE.search(statement.group(0)) or _OPENING_LABEL_RE.match(sentence))
            claims.append(Claim(statement.start(), label, concludes, remark))
    for box in boxes:
        named, label = decide(box.group(1), choices)
        reading = next((r for r in readings if r.start <= box.start() < r.end), None)
        if reading is not None and not reading.named:
            reading = None  # the statement says nothing of it ("... is watching TV instead of \\boxed{C}")
        if not named or (reading and (reading.rejected or box.start() >= reading.clause_end)):
            continue
        sentence = _sentence_before(plain, box.start())
        if reading is not None:
            claims.append(Claim(box.start(), label, False, False))
        elif not _NEGATION_RE.search(sentence) and not _rejected(_window(plain, box.start(), choices), choices):
            alone = not any(box.start() - len(sentence) <= other.start() < box.start() for other in boxes)
            claims.append(Claim(box.start(), label, alone and bool(_CONCLUSION_RE.search(sentence)), False))
    return sorted(claims, key=lambda claim: claim.at)


def _sentence_before(plain: str, at: int) -> str:
    """The text from the start of ``at``'s sentence (a period and a space, at most ANSWER_WINDOW back) to ``at``."""
    start = max(0, at - ANSWER_WINDOW)
    for end in re.finditer(r"\.(?=\s)", plain[start:at]):
        start = max(0, at - ANSWER_WINDOW) + end.end()
    return plain[start:at]


def _agreed(claims: list[Claim]) -> str | None:
    """The label all claims name; when they differ, the last conclusion's ("Therefore, the answer is (C)"),
    if every claim after it and every claim before it that picks a choice name it too, remarks on one
    labelled choice aside ("Option (C) is a possibility. ... Thus, the answer is (E)"). A hedge before the
    conclusion is resolved by it ("The answer is (C) or (D). ... Therefore, the answer is (D)"). None
    otherwise: "The answer is boston. Therefore, the answer is maine (a)" and "I pick \\boxed{A}. Thus,
    the answer is (B)" contradict themselves, and a bare box at the end resolves nothing ("the answer is
    (B) or (E). \\boxed{E}")."""
    labels = {claim.label for claim in claims}
    if len(labels) == 1:
        return labels.pop()
    last = max((k for k, claim in enumerate(claims) if claim.concludes), default=None)
    if last is None or claims[last].label is None:
        return None
    before = {c.label for c in claims[:last] if c.label is not None and not c.remark}
    after = {c.label for c in claims[last:]}
    return claims[last].label if before | after == {claims[last].label} else None


def extract_choice(text: str, choices: list[tuple[str, str]]) -> str | None:
    """The label a completion picks, from its answer statements and boxed answers that name a choice (they
    must agree, or a conclusion settle between them: `_agreed`); without one, from a last line that is a
    label ("B. Walk", "(C)"), or the one label the text mentions; None when it names none, hedges, rejects
    the choice it names, or its letter and choice text disagree. Labels are lowercased.

    >>> choices = [("a", "shirt pocket"), ("b", "basket"), ("c", "desk")]
    >>> extract_choice("Therefore, the answer is basket (b).", choices)
    'b'
    >>> extract_choice("So the answer is Basket.", choices)
    'b'
    >>> extract_choice("Answer: C) desk", choices)
    'c'
    >>> extract_choice("A desk holds a blotter. \\\\boxed{(C) \\\\text{desk}}", choices)
    'c'
    >>> extract_choice("The answer is (a) shirt pocket or (c) desk.", choices) is None
    True
    >>> extract_choice("(a) is wrong, (c) fits.", choices) is None
    True
    >>> extract_choice("The answer is a basket. The answer is desk (c).", choices) is None
    True
    >>> extract_choice("(A) shirt pocket: this choice is likely. Thus, the answer is \\\\boxed{(c)}.", choices)
    'c'
    >>> extract_choice("So the answer is \\\\boxed{B}. A desk is near, so the answer is \\\\boxed{C}.", choices) is None
    True
    """
    text = text.split(NEXT_QUESTION, 1)[0].replace("**", "")
    text = _LATEX_MATH_RE.sub(" ", _LATEX_TEXT_RE.sub(r"\1", text))
    claims = _claims(text, choices)
    if claims:
        return _agreed(claims)
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
    if _rejected(_window(text, found[-1].start(), choices), choices):
        return None
    starts = [m.end() for m in _SENTENCE_END_RE.finditer(text, max(0, end - ANSWER_WINDOW), found[-1].start())]
    return decide(text[starts[-1] if starts else max(0, end - ANSWER_WINDOW) : end], choices)[1]
