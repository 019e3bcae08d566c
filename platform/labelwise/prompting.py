"""Prompt rendering shared by scoring, training and evaluation, and the prompt's token ids
and length limit (what the scorer takes; the pool stage warns about longer prompts).

The same text goes to the model everywhere: the tokenizer's chat template with a generation
prompt when the model has one (and ``chat_template`` is on), else a plain template.
"""

from __future__ import annotations

PLAIN_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"


def render_prompt(tokenizer, prompt: str, chat_template: bool = True) -> str:
    """The text the model sees before it answers ``prompt``."""
    if uses_chat_template(tokenizer, chat_template):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return PLAIN_TEMPLATE.format(prompt=prompt)


def render_example(tokenizer, prompt: str, response: str, chat_template: bool = True):
    """(prompt text, full text) for training: loss is taken on full[len(prompt text):]."""
    head = render_prompt(tokenizer, prompt, chat_template)
    eos = tokenizer.eos_token or ""
    return head, head + response + eos


def uses_chat_template(tokenizer, chat_template: bool) -> bool:
    return bool(chat_template and getattr(tokenizer, "chat_template", None))


def prompt_ids(tokenizer, prompt: str, chat_template: bool) -> list[int]:
    """Token ids of the rendered prompt (a chat template already holds its special tokens)."""
    text = render_prompt(tokenizer, prompt, chat_template)
    special = not uses_chat_template(tokenizer, chat_template)
    return tokenizer(text, add_special_tokens=special).input_ids


def prompt_limit(max_prompt_tokens: int | None, context: int | None, max_new_tokens: int) -> int:
    """Longest prompt that leaves room for the answer in the model's context."""
    room = None if context is None else context - max_new_tokens
    if max_prompt_tokens is None:
        if room is None:
            raise ValueError("the model config has no max_position_embeddings: set score.max_prompt_tokens")
        limit = room
    else:
        limit = max_prompt_tokens if room is None else min(max_prompt_tokens, room)
    if limit < 1:
        raise ValueError(
            f"score.max_new_tokens={max_new_tokens} leaves no room for a prompt in the model context ({context})"
        )
    return limit
