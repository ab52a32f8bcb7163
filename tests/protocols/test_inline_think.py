"""The ``<think>`` splitter: the same reasoning and answer whatever the chunking.

Property tests cut texts (built from the pieces that make the splitter's life hard: tags, tag
halves, whitespace, a literal tag in prose) at random points and check the streamed result
against the whole-text rule in ``inline_think.split``; examples pin the rule itself.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from ironspire.messages import Accumulator, ReasoningDelta, StreamEvent, TextDelta
from ironspire.protocols.inline_think import ThinkSplitter, split

PIECES = st.sampled_from([
    "<think>", "</think>", "<", "</", "<th", "</thi", "think>", ">", "\n", "\n\n", " ", "  ",
    "Okay, the user asks", "x < y", "a</b>", "answer", "é", "🙂", "<think", "</think",
])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=14).map("".join)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


def run(chunks: list[str]) -> list[StreamEvent]:
    splitter = ThinkSplitter()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(splitter.feed(chunk))
    events.extend(splitter.close())
    return events


def joined(events: list[StreamEvent]) -> tuple[str, str]:
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, text


@settings(max_examples=400, deadline=None)
@given(TEXTS, st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_the_whole_text_result(text: str, cuts: list[int]) -> None:
    events = run(chunked(text, cuts))
    assert joined(events) == split(text)
    assert all(e.text for e in events if isinstance(e, TextDelta | ReasoningDelta))  # no empty deltas


@settings(max_examples=200, deadline=None)
@given(TEXTS, st.lists(st.integers(min_value=0), max_size=12))
def test_reasoning_never_follows_answer_text(text: str, cuts: list[int]) -> None:
    """One reasoning block at most, and only before the answer: prose can never turn into reasoning."""
    events = run(chunked(text, cuts))
    kinds = [type(e) for e in events]
    if TextDelta in kinds:
        first_text = kinds.index(TextDelta)
        assert ReasoningDelta not in kinds[first_text:]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40).filter(lambda t: not t.lstrip().startswith("<think>")),
       st.lists(st.integers(min_value=0), max_size=8))
def test_text_without_an_opening_tag_is_passed_through_unchanged(text: str, cuts: list[int]) -> None:
    assert joined(run(chunked(text, cuts))) == ("", text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30).filter(lambda t: "</think>" not in t),
       st.text(max_size=30), st.lists(st.integers(min_value=0), max_size=10))
def test_one_character_at_a_time_or_any_cut_splits_reasoning_from_answer(
    reasoning: str, answer: str, cuts: list[int]
) -> None:
    text = f"\n<think>{reasoning}</think>\n\n{answer}"
    assert joined(run(chunked(text, cuts))) == (reasoning, answer.lstrip())
    assert joined(run(list(text))) == (reasoning, answer.lstrip())


def test_a_tag_split_over_chunks_is_recognised() -> None:
    assert joined(run(["<th", "ink>plan", "</th", "ink>\n\nHello"])) == ("plan", "Hello")


def test_an_unclosed_tag_at_the_end_keeps_everything_reasoning() -> None:
    """The output cap hit mid-thought: what was written is reasoning, the answer is empty."""
    assert joined(run(["<think>still thinking", " about it</thi"])) == ("still thinking about it</thi", "")


def test_a_literal_tag_in_prose_after_the_first_text_stays_text() -> None:
    text = "Use the <think> tag like this: <think>x</think>."
    assert joined(run([text[:10], text[10:]])) == ("", text)
    assert joined(run(["Sure. ", "<think>", "no</think>"])) == ("", "Sure. <think>no</think>")


def test_a_partial_tag_that_never_completes_is_text() -> None:
    assert joined(run(["  <thi"])) == ("", "  <thi")
    assert joined(run(["<think", "ing is hard"])) == ("", "<thinking is hard")


def test_answer_text_streams_without_waiting_once_decided() -> None:
    splitter = ThinkSplitter()
    assert list(splitter.feed("Hello")) == [TextDelta("Hello")]
    assert list(splitter.feed(" <think>")) == [TextDelta(" <think>")]


def test_accumulated_message_holds_an_unsigned_reasoning_part_of_its_origin() -> None:
    acc = Accumulator("together", "deepseek-ai/DeepSeek-R1")
    acc.feed(run(["<think>\nplan\n</think>\n\n", "The answer."]))
    message = acc.message()
    assert message.text == "The answer."
    reasoning = message.parts[0]
    assert message.reasoning == "\nplan\n"
    assert getattr(reasoning, "signature", "x") is None
    assert (getattr(reasoning, "provider", None), getattr(reasoning, "model", None)) == (
        "together", "deepseek-ai/DeepSeek-R1")
