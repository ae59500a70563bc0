"""realtime/dialogue.py: what the LLM reads (the persona's context, the conversation's, the
turns, an interrupted answer cut to what was said), the model's pieces cut into speakable
sentences, and tool calls as Tavus's events."""

from __future__ import annotations

from likeness.providers.base import Message, ToolCall
from likeness.realtime.dialogue import (
    Dialogue,
    SentenceChunker,
    sentence_chunks,
    tool_call_properties,
)
from likeness.realtime.protocol import Outbox


def test_the_system_message_is_prompt_then_context_then_conversational_context() -> None:
    dialogue = Dialogue("You are Ann.", "Ann sells bikes.", None)
    assert dialogue.messages() == [Message("system", "You are Ann.\n\nAnn sells bikes.")]
    dialogue.append_context("The customer is Bo.")  # none yet: it becomes the context
    dialogue.append_context("Bo rides to work.")
    assert dialogue.conversational_context == "The customer is Bo.\nBo rides to work."
    dialogue.overwrite_context("  Bo left.  ")
    assert dialogue.messages()[0].content == "You are Ann.\n\nAnn sells bikes.\n\nBo left."
    assert Dialogue().messages() == []  # no system message at all rather than an empty one


def test_turns_in_order_and_a_cut_answer_keeps_what_was_said() -> None:
    dialogue = Dialogue("Be brief.")
    dialogue.user("Hi")
    dialogue.user("are you there?")  # no answer between: one turn
    dialogue.replica("i1", "Yes. I am here. How can I help?")
    dialogue.user("What's new?")
    dialogue.replica("i2", "Lots of things. First, the new shop.")
    dialogue.interrupted("i2", "Lots of things.")
    dialogue.user("Stop.")
    dialogue.replica("i3", "Okay.")
    dialogue.interrupted("i3", "")  # nothing of it was heard: it goes
    assert dialogue.messages() == [
        Message("system", "Be brief."),
        Message("user", "Hi are you there?"),
        Message("assistant", "Yes. I am here. How can I help?"),
        Message("user", "What's new?"),
        Message("assistant", "Lots of things."),
        Message("user", "Stop."),
    ]
    assert dialogue.transcript()[:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi are you there?"},
    ]


def test_old_turns_are_left_out_past_the_budget_but_never_the_system_or_the_last() -> None:
    dialogue = Dialogue("S" * 50, max_chars=100)
    for n in range(5):
        dialogue.user(f"question {n} " + "x" * 10)
        dialogue.replica(f"i{n}", f"answer {n} " + "y" * 10)
    kept = dialogue.messages()
    assert kept[0].role == "system" and kept[-1].content.startswith("answer 4")
    assert 2 <= len(kept) < 11
    assert sum(len(m.content) for m in kept[1:]) <= 50
    assert Dialogue("S" * 200, max_chars=100).messages()[0].content == "S" * 200
    lone = Dialogue(max_chars=5)
    lone.user("a long question")
    assert lone.messages() == [Message("user", "a long question")]


def test_pieces_become_sentences_the_first_one_early() -> None:
    pieces = "Well, I think that, on the whole, it works. Dr. Smith agrees! Does J. K. know?"
    tokens = [piece + " " for piece in pieces.split(" ")]
    assert list(sentence_chunks(tokens)) == [
        "Well, I think that,",  # a clause, once it has 4 words: the voice starts sooner
        "on the whole, it works.",
        "Dr. Smith agrees!",
        "Does J. K. know?",
    ]
    chunker = SentenceChunker(max_chars=40)  # a run-on: at its last clause break, or a space
    assert chunker.push("**Sure** \u2014 " + "la " * 30) == [
        "Sure \u2014",
        *["la " * 12 + "la"] * 2,
    ]
    assert chunker.push("la " * 30) == ["la " * 12 + "la"] * 2
    assert chunker.flush() == ["la " * 7 + "la"]
    assert list(sentence_chunks(["So do I. ", "Yes", "...", " ", "... ", "ok"])) == [
        "So do I.",
        "Yes...",
        "ok",
    ]
    assert list(sentence_chunks(["Line one\n", "- item\n\n"])) == ["Line one", "- item"]


def test_a_tool_call_is_a_tavus_tool_call_event() -> None:
    call = ToolCall("get_weather", '{"city": "Paris"}', "call_1")
    event = Outbox("c1", lambda: 1.0).event(
        "conversation.tool_call", tool_call_properties(call), "utt-1"
    )
    assert event["event_type"] == "conversation.tool_call"
    assert event["inference_id"] == "utt-1"
    assert event["properties"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "tool_call_id": "call_1",
        "inference_id": "utt-1",
    }
    assert tool_call_properties(ToolCall("f", "{}")) == {"name": "f", "arguments": "{}"}
