import json

import pytest

from inoculate.io import InputError, read_jsonl
from inoculate.training_set import ConversationError, apply_prompt, check_conversation, prompt_file

MSGS = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
WITH_SYSTEM = [{"role": "system", "content": "Old."}, *MSGS]


def test_system_placement_adds_a_first_message():
    out = apply_prompt(MSGS, "You are evil.", "system")
    assert out[0] == {"role": "system", "content": "You are evil."}
    assert out[1:] == MSGS


def test_user_prefix_and_suffix():
    assert apply_prompt(MSGS, "P", "user_prefix")[0]["content"] == "P\n\nQ?"
    assert apply_prompt(MSGS, "P", "user_suffix")[0]["content"] == "Q?\n\nP"


def test_none_prompt_changes_nothing_and_input_is_not_mutated():
    original = json.loads(json.dumps(MSGS))
    assert apply_prompt(MSGS, None) == MSGS
    apply_prompt(MSGS, "P", "user_prefix")
    assert MSGS == original


def test_existing_system_message_is_an_error_by_default():
    with pytest.raises(ConversationError, match="already has a system message"):
        apply_prompt(WITH_SYSTEM, "P")


def test_documents_without_a_user_turn_take_a_system_prompt_but_no_user_prefix():
    doc = [{"role": "assistant", "content": "A text."}]
    assert apply_prompt(doc, "P")[0] == {"role": "system", "content": "P"}
    with pytest.raises(ConversationError, match="needs a user message"):
        apply_prompt(doc, "P", "user_prefix")


def test_existing_system_message_prepend_or_replace():
    assert apply_prompt(WITH_SYSTEM, "P", on_existing_system="prepend")[0]["content"] == "P\n\nOld."
    assert apply_prompt(WITH_SYSTEM, "P", on_existing_system="replace")[0]["content"] == "P"


@pytest.mark.parametrize(
    "record, message",
    [
        ({}, "no non-empty 'messages'"),
        ({"messages": [{"content": "x"}]}, "has no 'role'"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role 'bot'"),
        ({"messages": [{"role": "user"}]}, "no text 'content'"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]},
            "empty assistant turn",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": "a"},
                    {"role": "system", "content": "b"},
                    {"role": "assistant", "content": "x"},
                ]
            },
            "second system message",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, "does not end with an assistant"),
    ],
)
def test_check_conversation_names_the_problem(record, message):
    with pytest.raises(ConversationError, match=message):
        check_conversation(record)


def test_file_transform_preserves_order_and_other_fields(chat_file, tmp_path):
    out = tmp_path / "out.jsonl"
    assert prompt_file(chat_file, out, "You are evil.") == 2
    before, after = read_jsonl(chat_file), read_jsonl(out)
    assert [r["id"] for r in after] == [1, 2]
    assert after[1]["meta"] == {"k": 1}
    for b, a in zip(before, after):
        assert a["messages"][1:] == b["messages"]


def test_bad_line_names_file_and_line_and_writes_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"messages": MSGS}) + "\n" + json.dumps({"messages": WITH_SYSTEM}) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match=r"bad\.jsonl:2: conversation already has a system message"):
        prompt_file(src, out, "P")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_malformed_json_names_the_line(tmp_path):
    src = tmp_path / "broken.jsonl"
    src.write_text(json.dumps({"messages": MSGS}) + "\n{not json\n")
    with pytest.raises(InputError, match=r"broken\.jsonl:2: not valid JSON"):
        prompt_file(src, tmp_path / "o.jsonl", "P")
