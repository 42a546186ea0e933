import torch

from selftaught.models.positions import DigitPositions, SequentialPositions, make_scheme
from selftaught.tasks.arithmetic import compact_completion, compact_prompt


def _positions(tokenizer, text, period=None):
    scheme = make_scheme("digit", tokenizer)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    return scheme.full(ids, period=period)[0][0].tolist()[1:]  # drop BOS


def test_digit_positions_give_each_column_its_slots(char_tokenizer):
    text = compact_prompt("123", "4567", "4690") + compact_completion("123", "4567")
    assert text == "321+7654(0964)=37001,26190,15060,04040|0964"
    pos = _positions(char_tokenizer, text)
    col = [8 * i for i in range(6)]
    assert pos[0:3] == [col[1] + 1, col[2] + 1, col[3] + 1]  # A: slot 1
    assert pos[4:8] == [c + 2 for c in col[1:5]]  # B: slot 2
    assert pos[9:13] == [c + 7 for c in col[1:5]]  # hint: slot 7
    steps = pos[14 : text.index("|")]
    # "=" or "," opens column i at slot 0; then a, b, carry in, digit, carry out at slots 1..5
    for i in range(4):
        assert steps[6 * i : 6 * i + 6] == [col[i + 1] + k for k in range(6)]
    assert pos[text.index("|")] == 6
    assert pos[-4:] == [c + 6 for c in col[1:5]]  # answer digits: slot 6


def test_reading_a_digit_is_the_same_offset_at_any_length(char_tokenizer):
    for a, b in [("12", "34"), ("1234567890", "9876543210")]:
        text = compact_prompt(a, b) + compact_completion(a, b)
        pos = _positions(char_tokenizer, text)
        start = text.index("=")
        for i in range(len(a)):
            opener = start + 6 * i  # the "=" or "," that opens column i+1
            assert pos[i] - pos[opener] == 1  # operand A digit i+1 sits one slot after
            assert pos[len(a) + 1 + i] - pos[opener] == 2


def test_random_period_only_stretches_columns(char_tokenizer):
    text = compact_prompt("58", "67") + compact_completion("58", "67")
    base = _positions(char_tokenizer, text)
    wide = _positions(char_tokenizer, text, torch.tensor([20]))
    assert [p % 8 for p in base if p] == [p % 20 for p in wide if p]


def test_incremental_positions_equal_full(char_tokenizer):
    scheme = make_scheme("digit", char_tokenizer)
    texts = [compact_prompt("99", "1", "100") + compact_completion("99", "1"), "12+3=|51 x,"]
    batch = char_tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
    full, _ = scheme.full(batch)
    state = scheme.init_state(batch.shape[0])
    for t in range(batch.shape[1]):
        pos, state = scheme.step(batch[:, t], state)
        assert torch.equal(pos, full[:, t])
    assert isinstance(scheme, DigitPositions)


def test_sequential_matches_generate_convention():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions, state = SequentialPositions().full(mask, mask)
    assert positions.tolist() == [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert state.tolist() == [3, 5]


def test_both_schemes_answer_the_same_methods(char_tokenizer):
    """One protocol: a block's ids (``full``) equal its tokens' ids one ``step`` at a time, for either scheme."""
    ids = char_tokenizer([compact_prompt("58", "67")], return_tensors="pt")["input_ids"]
    for name, ordinary in (("digit", False), ("sequential", True)):
        scheme = make_scheme(name, char_tokenizer)
        assert (scheme.name, scheme.ordinary) == (name, ordinary)
        full, end = scheme.full(ids, torch.ones_like(ids))
        state = scheme.init_state(ids.shape[0])
        steps = []
        for t in range(ids.shape[1]):
            pos, state = scheme.step(ids[:, t], state)
            steps.append(pos)
        assert torch.equal(torch.stack(steps, dim=1), full)
