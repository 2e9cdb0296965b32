"""What the guard reads from a request and an answer: the token estimate
before, and the usage the backend reports after."""

from __future__ import annotations

from moc.gateway.http.guard import estimate_tokens, reported_tokens


def test_the_usage_an_answer_reports() -> None:
    whole = b'{"usage":{"prompt_tokens":53,"total_tokens":57,"prompt_tokens_details":{"a":0}}}'
    assert reported_tokens(whole) == 57
    stream = b'data: {"usage":null}\n\ndata: {"usage":{"total_tokens":12}}\n\ndata: [DONE]\n\n'
    assert reported_tokens(stream) == 12
    assert reported_tokens(b'{"done":true,"prompt_eval_count":5,"eval_count":7}\n') == 12
    assert reported_tokens(b'{"choices":[]}') is None


def test_the_estimate_is_the_text_and_what_it_may_generate_for_each_choice() -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 10}
    one = estimate_tokens(chat)
    assert 100 < one < 130
    assert estimate_tokens({**chat, "n": 3}) == 3 * one
    assert estimate_tokens({"prompt": "abcd"}) == 2 + 256  # no max_tokens: 256
    assert estimate_tokens({"input": "abcd"}) == 2  # embeddings generate nothing
    assert estimate_tokens({"prompt": "", "options": {"num_predict": 7}}) == 8
