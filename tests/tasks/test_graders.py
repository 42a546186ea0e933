"""Graders on outputs written in the styles real models produce: base models under the STaR few-shot
prompt (which run on into the next question) and instruct models (markdown, boxed answers, restated
answers, letters in many formats). A false accept poisons STaR's training set, so hedges and
contradictions must be graded wrong."""

from __future__ import annotations

import pytest

from selftaught.config import DataConfig
from selftaught.tasks.base import Example
from selftaught.tasks.commonsenseqa import CommonsenseQATask
from selftaught.tasks.gsm8k import NO_CHECKED_STEP, GSM8KTask

GLASSES = Example(
    "kylar",
    "Kylar went to the store to buy glasses for his new apartment. One glass costs $5, but every second glass "
    "costs only 60% of the price. Kylar wants to buy 16 glasses. How much does he need to pay for them?",
    "64",
)
PIE = Example("pie", "A pie is cut into 8 slices and 6 are eaten. What percent of the pie is left?", "25")

CYNTHIA = Example(
    "cynthia",
    "Cynthia eats one serving of ice cream every night. She buys cartons of ice cream with 15 servings of ice "
    "cream per carton at a cost of $4.00 per carton. After 60 days, how much will she spend on ice cream?",
    "16",
)
RYAN = Example(
    "ryan",
    "Ryan plants 2 flowers a day in his garden. After 15 days, how many flowers does he have if 5 did not grow?",
    "25",
)

GSM_CASES = [
    # the answer sentence restates a number from the question (read as 60 and 15 before)
    (
        CYNTHIA,
        "She needs 60 / 15 = 4 cartons, at $4.00 each.\n\nAnswer: After 60 days, Cynthia will spend $16.00",
        "16",
    ),
    (RYAN, "He plants 2 * 15 = 30 flowers and 5 do not grow.\nTherefore, Ryan has 25 flowers after 15 days.", "25"),
    (RYAN, "In 15 days he plants 30 flowers, 5 of them die, so he has 30 - 5 = 25", "25"),
    (Example("same", "Tom had 5 apples, ate 2 and bought 2. How many does he have?", "5"), "He has 3 + 2 = 5", "5"),
    # base model, STaR few-shot format, running on into a made-up next question with its own answer
    (
        GLASSES,
        " The discounted price of one glass is 60/100 * 5 = $<<60/100*5=3>>3.\nIf every second glass is cheaper, "
        "that means Kylar is going to buy 16 / 2 = <<16/2=8>>8 cheaper glasses.\nSo for the cheaper glasses, Kylar "
        "is going to pay 8 * 3 = $<<8*3=24>>24.\nAnd for the regular-priced glasses, Kylar will pay 8 * 5 = "
        "$<<8*5=40>>40.\nSo in total Kylar needs to pay 24 + 40 = $<<24+40=64>>64 for the glasses he wants to buy."
        "\n#### 64\n\nQ: Toulouse has twice as many sheep as Charleston. How many sheep do they have?\nA: 4 * 20 = "
        "<<4*20=80>>80\n#### 80",
        "64",
    ),
    # instruct model: an answer sentence followed by other numbers (the old last-number fallback took 16)
    (
        GLASSES,
        "Let's work through this step by step.\n\n1. Regular glasses: every other glass costs $5, so 8 glasses "
        "cost 8 × $5 = $40.\n2. Discounted glasses: 60% of $5 is $3, so 8 glasses cost 8 × $3 = $24.\n3. Total: "
        "$40 + $24 = $64.\n\nAnswer: Kylar needs to pay $64 for 16 glasses.",
        "64",
    ),
    (GLASSES, "Adding both groups gives 40 + 24 = 64.\n\n**Final Answer:** $64 (for all 16 glasses)", "64"),
    (GLASSES, "So the total cost is $40 + $24.\n\nThe final answer is $\\boxed{64}$.", "64"),
    (GLASSES, "Eight full-price glasses and eight at 60%.\n\nThe answer is:\n\n64", "64"),
    (GLASSES, "First guess: the answer is 80, but every second glass is cheaper. So the answer is 64.", "64"),
    (GLASSES, "The cost is 8 * 5 + 8 * 3.\nThe answer is 8 * 5 + 8 * 3 = 64 dollars.", "64"),
    # a fraction restating a percentage the question asks for
    (PIE, "6 of 8 slices are eaten, so 2 of 8 are left, which is 25%.\nThe answer (as a fraction) is 1/4.", "1/4"),
    (PIE, "2 slices of 8 are left: 2/8 = 25%.\n#### 25", "25"),
]


@pytest.fixture
def gsm():
    return GSM8KTask(DataConfig())


@pytest.mark.parametrize("example, completion, answer", GSM_CASES)
def test_gsm8k_right_answers_in_real_styles(gsm, example, completion, answer):
    assert gsm.extract_answer(completion, example) == answer
    assert gsm.check(gsm.extract_answer(completion, example), example)


@pytest.mark.parametrize(
    "example, completion",
    [
        (GLASSES, "The answer is 64 or 80, depending on the discount."),  # a hedge is no answer
        (GLASSES, "Each glass costs $5, so 16 glasses cost $80.\nAnswer: Kylar pays $80 for 16 glasses."),
        (GLASSES, "Half are cheaper.\n#### 40\n\nQ: next\nA: #### 64"),  # the next question does not count
        (GLASSES, "The final answer is $\\boxed{80}$. (64 if discounted)"),
        (PIE, "6/8 are eaten.\nThe answer is 3/4."),  # a fraction, but the wrong one
        # the gold answer in the working, a wrong one in the last sentence: no number from the working counts
        (CYNTHIA, "4 cartons cost 4 * 4 = $16.\nSo after 60 days Cynthia will spend $20."),
        (RYAN, "He plants 2 * 15 = 30 and 5 die: 25 left.\nAfter 15 days Ryan has 30 flowers."),
        (CYNTHIA, "She eats 60 servings, 15 per carton, 16 dollars is too much.\nAnswer: 60 servings, 4 cartons"),
        # Gemma 3 270M on GSM8K: a loop cut by the token budget, whose last line happens to hold the answer
        (
            RYAN,
            " He has 45 - 5 = 40 flowers.\nHe has 30 - 5 = 25 flowers.\nHe has 45 - 5 = 40 flowers.\n"
            "He has 30 - 5 = 25 flowers.",
        ),
        (
            RYAN,
            " So he has 30 - 5 = 25 and 2 more.\nSo he has 30 - 5 = 25 and 2 more.\nSo he has 30 - 5 = 25",
        ),  # cut off
        (RYAN, " He has " + "30 - 5 = 25 = " * 6),  # a loop inside one line
        (PIE, "The answer is 0.25%."),  # a percentage sign means percent
        (Example("n", "How many slices are left?", "25"), "The answer is 1/4."),  # no percent asked
    ],
)
def test_gsm8k_wrong_answers_stay_wrong(gsm, example, completion):
    assert not gsm.check(gsm.extract_answer(completion, example), example)


def test_gsm8k_unevaluable_annotations_are_unchecked_not_wrong(gsm):
    completion = " He earns 500 a month, so 500/month * 12 = <<500/month*12=6000>>6000 a year.\n#### 6000"
    example = Example("pay", "He earns $500 a month. How much does he earn in a year?", "6000")
    assert gsm.verify_rationale(example, completion) is None
    assert gsm.verify_rationale(example, " 500 * 12 = <<500*12=6001>>6001\n#### 6000").startswith("<<500*12=6001>>")


def test_gsm8k_rationale_without_a_checkable_step(gsm):
    example = Example("pay", "He earns $500 a month. How much does he earn in a year?", "6000")
    unannotated = " He earns 500 a month for 12 months, which is 6000.\n#### 6000"
    units_only = " 500/month * 12 = <<500/month*12=6000>>6000\n#### 6000"
    assert gsm.verify_rationale(example, unannotated) is None  # the default: passes the step check
    strict = GSM8KTask(DataConfig(require_checked_step=True))
    assert strict.verify_rationale(example, unannotated) == NO_CHECKED_STEP
    assert strict.verify_rationale(example, units_only) == NO_CHECKED_STEP
    assert strict.verify_rationale(example, " 500*12 = <<500*12=6000>>6000\n#### 6000") is None


SEAFOOD = Example(
    "sea",
    "Where would you find a seafood restaurant in the east coast of North America?",
    "a",
    (("choices", (("a", "maine"), ("b", "boston"), ("c", "beach town"), ("d", "coastal cities"), ("e", "ocean"))),),
)

CSQA_CASES = [
    # base model, STaR format, then a made-up next question whose answer must not count
    (
        " The answer must be a place on the east coast of North America. Maine is a state on the east coast "
        "known for its lobster. Therefore, the answer is maine (a).\n\nQ: What do you use to cut paper?\n"
        "Answer Choices:\n(a) spoon\n(b) scissors\nA: Therefore, the answer is scissors (b).",
        "a",
    ),
    ("Answer: A) maine", "a"),
    ("Maine is on the east coast and famous for seafood.\n\nA. Maine", "a"),
    ("Considering each option, Maine is the best fit.\n\n(A)", "a"),
    ("Seafood restaurants are common in Maine, so the answer is most likely A", "a"),
    ("Maine is known for lobster shacks. Therefore, the answer is (\na) maine", "a"),
    (
        "The answer is not obviously a city. Boston has seafood, but so do many places; a beach town is too "
        "generic, and the ocean is not a place for a restaurant. Maine is the region most associated with "
        "seafood on the east coast.\n\nTherefore, the answer is (A) maine.",
        "a",
    ),
    ("Let me think. Maine is a state known for seafood.\n\n**Answer: (A) maine**", "a"),
    ("Maine fits best.\n\nThe answer is A, maine.", "a"),
    ("All options are coastal. The best choice is maine.", "a"),
    ("(a) maine\n\nA:", "a"),  # the echoed answer cue does not hide the choice above it
    # an answer in words, without "answer"
    ("Seafood is everywhere on the coast, so the most likely place to find one is Maine (A).", "a"),
    ("Lobster comes from the north. The most likely answer is maine.", "a"),
]


@pytest.fixture
def csqa():
    return CommonsenseQATask(DataConfig())


@pytest.mark.parametrize("completion, label", CSQA_CASES)
def test_commonsenseqa_right_answers_in_real_styles(csqa, completion, label):
    assert csqa.extract_answer(completion, SEAFOOD) == label
    assert csqa.check(csqa.extract_answer(completion, SEAFOOD), SEAFOOD)


@pytest.mark.parametrize(
    "completion",
    [
        "The answer is (a) maine or (d) coastal cities.",  # a hedge between two choices
        "It could be (a) maine, but also (b) boston.",  # no statement, two labels
        "The answer is A, a beach town.",  # letter and choice text disagree
        "The answer is B, maine.",
        "Therefore, the answer is boston (b).\n\nQ: next\nA: the answer is maine (a).",
        "The answer is maine or boston.",
        # hedges published models write: one letter used to be read from each
        "Therefore, the answer is either A or B.",
        "The answer is A or D.",
        "The answer is B, boston; D, coastal cities; or E, ocean.",
        "The answer is (a) maine or boston.",
        "The most likely place is either maine or a beach town (C).",
        # SmolLM2-135M-Instruct: its choice, then the prompt's "A:" cue echoed on the last line (read as (a))
        "(c) beach town\n\nA:",
        "(b) boston\n\nA:\nA:\nA:",
        # Gemma 3 270M: a letter beside a thing that is no choice (5 of its 10 accepts on 100 questions)
        " The answer must be a place by the sea. Therefore, the answer is a lighthouse (a).",
        " The answer must be a harbor (a). A harbor is where boats stay.",
        "The answer is clear.",
    ],
)
def test_commonsenseqa_hedges_and_contradictions_are_wrong(csqa, completion):
    assert not csqa.check(csqa.extract_answer(completion, SEAFOOD), SEAFOOD)
    cut = csqa.stop().cut(completion + " More text.\n\nQ: next")  # cut as generation would: still wrong
    assert not csqa.check(csqa.extract_answer(cut, SEAFOOD), SEAFOOD)


def test_commonsenseqa_choice_texts_holding_clause_words(csqa):
    example = Example("u", "How did he react?", "a", (("choices", (("a", "did not understand"), ("b", "accepting"))),))
    assert csqa.extract_answer("The answer is A, did not understand.", example) == "a"
    assert csqa.extract_answer("The answer is B, did not understand.", example) is None
    assert csqa.extract_answer("The answer is (a) did not understand, not (b) accepting.", example) == "a"


# ---------------------------------------------------------------- faults found reading real outputs
EGGS = Example("eggs", "Ann buys 12 eggs a week and uses half. How many eggs does she buy in 2 weeks?", "24")


def test_commonsenseqa_answer_statements_that_disagree_are_no_answer(csqa):
    # Gemma 3 270M: "The answer is a resort. The answer is city (e)." was read as its last statement
    for completion in (
        " The answer must be a place on the coast. The answer is a beach town. The answer is maine (a).",
        "The answer is boston. Therefore, the answer is maine (a).",
        "(a) maine\n\nThe answer is (a)\n\nThe answer is (b)",  # SmolLM2 running on through the letters
    ):
        assert csqa.extract_answer(completion, SEAFOOD) is None, completion
    # statements naming the same choice agree
    assert csqa.extract_answer("(a) maine\n\nThe answer is (a)\n\nThe answer is (a)", SEAFOOD) == "a"
    assert csqa.extract_answer("The answer is maine. Therefore, the answer is maine (a).", SEAFOOD) == "a"


def test_commonsenseqa_a_choice_its_sentence_rejects_is_no_answer(csqa):
    # SmolLM2-135M-Instruct: "(c) understanding is not a suitable answer as ..." was read as (c)
    for completion in (
        '(a) maine is not a suitable answer as it does not convey the idea of a "restaurant".',
        "(a) is not the answer.",
        "(a) maine is incorrect.",
        "(a) maine: This answer is incorrect because the answer is not a logical choice. The correct answer is:",
        "(b) boston is not a suitable answer. The answer is (a) is not a valid option.",
        "The answer is (a) isn't right here.",
    ):
        assert csqa.extract_answer(completion, SEAFOOD) is None, completion
    # a choice picked, then another rejected, or a reason that negates something else, still reads
    assert csqa.extract_answer("The answer is (a) maine; it is not (b) boston.", SEAFOOD) == "a"
    assert csqa.extract_answer("Therefore, the answer is maine (a), which is not a city.", SEAFOOD) == "a"
    assert csqa.extract_answer("(b) boston is not a suitable answer. The answer is (a) maine.", SEAFOOD) == "a"


def test_gsm8k_numbered_list_loops_are_no_answer(gsm):
    # SmolLM2-135M-Instruct repeating a numbered step until its budget ran out: the old loop check missed
    # it because each repeat carries a new list number
    steps = "".join(f"{n}. 12 eggs = 12 x 2 = 24 eggs\n" for n in range(3, 21))
    looped = "Let's break it down:\n1. 3 eggs = 3 x 2 = 6 eggs\n2. 4 weeks = 4 x 2 = 8 weeks\n" + steps
    assert gsm.extract_answer(looped.rstrip(), EGGS) is None
    assert gsm.extract_answer(looped + "21. 12 eggs = 12 x 2 = 2", EGGS) is None  # cut mid-line
    # the loop ended on a bare list number: that number is no answer either
    lemon = "".join(f"{n}. Each year he plants 1 tree, so he plants 1 tree for 10 years.\n" for n in range(1, 14))
    assert gsm.extract_answer(lemon + "14.", Example("t", "How many years?", "14")) is None
    assert gsm.extract_answer("1. 12 eggs a week.\n2. 12 x 2 = 24\n3. Add them up.", EGGS) is None
    # numbered steps that do not repeat, and a bare number line that is no list item, still read
    assert gsm.extract_answer("1. 12 eggs a week.\n2. In 2 weeks: 12 x 2 = 24 eggs", EGGS) == "24"
    assert gsm.extract_answer("1. 6 eggs used a week.\n2. 12 x 2 = 24 eggs bought\n3. 24", EGGS) == "24"
    assert gsm.extract_answer("She buys 12 x 2 eggs in all, which is:\n24.", EGGS) == "24"


def test_gsm8k_a_short_line_repeated_until_the_budget_is_no_answer(gsm):
    # Gemma 3 270M on a 1-step word problem (3 - 2): a wrong step, then "1" again and again; the last "1"
    # matched the gold answer and was graded right (the step check then caught it)
    books = Example("w", "Ida has 3 books. Ida gives 2 books away. How many books does Ida have now?", "1")
    assert gsm.extract_answer(" 3/2 = <<3/2=1>>1\n" + "1\n" * 12, books) is None
    assert gsm.extract_answer(" 3-2 = <<3-2=1>>1\n1\n1\n1", books) is None
    # two equal lines, or a repeated answer line after the "#### N" that answers, still read
    assert gsm.extract_answer(" 3-2 = <<3-2=1>>1\n1", books) == "1"
    assert gsm.extract_answer(" 3-2 = <<3-2=1>>1\n#### 1", books) == "1"


def test_gsm8k_a_final_number_cut_from_the_stated_result_is_no_answer(gsm):
    # "= 125" then "#### 12" (the budget ran out mid-number), and SmolLM2's "3600 downloads.\n#### 3"
    example = Example("b", "A shop sells 5 boxes of 25 pens. How many pens?", "12")
    assert gsm.extract_answer(" 5 boxes of 25 pens is 5 * 25 = <<5*25=125>>125\n#### 12", example) is None
    downloads = Example("d", "How many downloads in three months?", "3")
    total = "The total number of downloads is 180 + 1800 + 1620 = 3600 downloads.\n#### 3\nThe answer is: 3"
    assert gsm.extract_answer(total, downloads) is None
    assert gsm.extract_answer("Her 880,000 copies sold.\n#### 88000", Example("c", "How many?", "88000")) is None
    # the same number, or a different one, is read as before
    assert gsm.extract_answer(" 5 * 25 = <<5*25=125>>125\n#### 125", example) == "125"
    assert gsm.extract_answer(" 9 * 2 = $<<9*2=18>>18.\n#### 18", example) == "18"
    assert gsm.extract_answer("She has 125 pens, 12 per pack.\n#### 10", example) == "10"
    # a GSM8K gold solution: the number that begins with the answer's digits is in an earlier sentence
    days = " 16 feet * 2 = <<16*2=32>>32 feet. This is taller than the window, so it took three days.\n#### 3"
    assert gsm.extract_answer(days, Example("m", "How many days will it take?", "3")) == "3"


def test_grading_reads_no_answer_from_a_number_the_budget_cut(gsm, csqa):
    from selftaught import star
    from selftaught.samples import Completion, Sample

    pens = Example("p", "A shop sells 5 boxes of 25 pens. How many pens?", "12")
    for text in (" 5 * 25 = <<5*25=125>>125\nThe answer is 12", " 5 + 7 = 12", " So she has 12.", "#### 1/"):
        row = star.grade(gsm, pens, Completion(text, truncated=True), hinted=False)
        assert (row.answer, row.correct, row.truncated) == (None, False, True), text
        assert star.grade(gsm, pens, text, hinted=False).truncated is False  # a plain str was not cut
    assert star.grade(gsm, pens, " 5 + 7 = 12", hinted=False).answer == "12"  # ended by EOS or a stop
    # an answer given before the cut is kept: the cut number is not the one read
    row = star.grade(gsm, pens, Completion(" 5 + 7 = 12\n#### 12\nThen 3 more boxes of 2", True), hinted=False)
    assert row.correct and row.truncated
    row = star.grade(gsm, pens, Completion(" The answer is 12. She then buys", True), hinted=False)
    assert row.correct  # cut mid-sentence, not mid-number
    row = star.grade(csqa, SEAFOOD, Completion("Therefore, the answer is maine (a). In 19", True), hinted=False)
    assert row.correct  # a letter answer does not depend on a cut number
    # samples saved before the field existed read as not cut; the field round-trips
    saved = row.to_json()
    assert Sample.from_json(saved) == row
    del saved["truncated"]
    assert Sample.from_json(saved).truncated is False


# ------------------------------------------------- faults found grading published LLM outputs (held out)
CITY = Example(
    "dc",
    "Where does a senator spend most of the year?",
    "e",
    (
        (
            "choices",
            (
                ("a", "home state"),
                ("b", "eat in restaurant"),
                ("c", "farm"),
                ("d", "ski lodge"),
                ("e", "washington d.c."),
            ),
        ),
    ),
)


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{(E) washington d.c.}",  # boxed: one label, its text
        "Senators work in the capital.\n\nTherefore, the answer is \\(\\boxed{E}\\).",
        "The capital is where they work. So the correct answer is \\boxed{(E) \\text{ Washington D.C.}}.",
        "\\boxed{E} Washington",  # the "D" of "D.C." is part of the choice's text, not a label
        "Thus, the best choice is:\n\n\\[\n\\boxed{E}\n\\]",
        # a hedge the text then resolves
        "Both (A) home state and (E) washington d.c. fit. However, the senate sits in the capital.\n\n"
        "Thus, the best answer is \\boxed{E}.",
        # the per-choice remarks before a conclusion are no answer of their own
        "(A) home state: this choice is possible, as senators visit home.\n(C) farm: this choice is wrong.\n\n"
        "Based on this analysis, the correct answer is (E) washington d.c.",
    ],
)
def test_commonsenseqa_boxed_answers_and_conclusions(csqa, completion):
    assert csqa.extract_answer(completion, CITY) == "e", completion


@pytest.mark.parametrize(
    "completion",
    [
        "So, the correct answer is \\boxed{(A) home state} or \\boxed{(E) washington d.c.}.",
        "Therefore, the correct answer is \\boxed{(A) home state} and \\boxed{(E) washington d.c.}.",
        "A senator could be at \\boxed{(A) home state} in summer or at \\boxed{(E) washington d.c.} in session.",
        "Thus, the answer is \\(\\boxed{E}\\) (or \\(\\boxed{A}\\) since both are places they live).",
        # a boxed pick before a conclusion that picks another: read as a contradiction, even where the model
        # was only weighing each choice (a box says nothing of which it means)
        "A senator may visit \\boxed{(A) home state}. The senate sits in \\boxed{(E) washington d.c.}.\n\n"
        "Therefore, the correct answer is \\boxed{(E) washington d.c.}.",
        "I pick \\boxed{A}. Thus, the answer is (E).",
        # two conclusions that pick different choices contradict each other
        "So the correct answer is \\boxed{A}. The senate meets in the capital, so the correct answer is \\boxed{E}.",
    ],
)
def test_commonsenseqa_boxed_hedges_and_contradictions_are_no_answer(csqa, completion):
    assert csqa.extract_answer(completion, CITY) is None, completion


def test_commonsenseqa_choice_text_with_articles_and_statement_look_alikes(csqa):
    # "eat in a restaurant" names the choice "eat in restaurant"; "a farm" is not the label (a)
    assert csqa.extract_answer("Therefore, the answer is \\boxed{(B) eat in a restaurant}.", CITY) == "b"
    assert csqa.extract_answer("The most likely place for him is a farm.", CITY) == "c"
    # a heading over the choices ("each answer choice:") and a clause ("most suitable ... who is") state no answer
    listed = "Let us look at each answer choice:\n(A) home state: too far.\n\nTherefore, the answer is (E)."
    assert csqa.extract_answer(listed, CITY) == "e"
    relative = "The most suitable choice for someone who is at a ski lodge is not asked. Thus, the answer is (E)."
    assert csqa.extract_answer(relative, CITY) == "e"


@pytest.mark.parametrize(
    "completion",
    [
        # a box its own sentence rejects
        "The answer is not \\boxed{A}.",
        "The answer isn't \\boxed{A}.",
        "\\boxed{A} is not the answer.",
        "\\boxed{A} is incorrect.",
        "It cannot be \\boxed{A}.",
        "I would not choose \\boxed{A}.",
        # a statement that picks one choice and a later conclusion that picks another, on one line
        "The options are (A) home state and (C) farm. The answer is (A). Therefore, the answer is (C).",
        "Between (A) and (C), the answer is (A). So the answer is (C).",
        # boxes that disagree, with no concluding sentence to settle them
        "the answer is (C) or (A). \\boxed{A}",
        "\\boxed{C}. \\boxed{A}",
        "\\boxed{C}. Hmm. Actually \\boxed{A}",
        # a hedge after a choice whose text holds periods
        "The answer is (E) Washington D.C. or (A) home state.",
        # a statement inside a box: no crash, and no answer
        "\\boxed{answer is (A)} or (C)",
    ],
)
def test_commonsenseqa_rejected_boxes_and_unsettled_picks_are_no_answer(csqa, completion):
    assert csqa.extract_answer(completion, CITY) is None, completion
