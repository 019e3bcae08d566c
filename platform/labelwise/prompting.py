"""Prompt rendering shared by scoring, training and evaluation.

The same text goes to the model everywhere: the tokenizer's chat template with a generation
prompt when the model has one (and ``chat_template`` is on), else a plain template.
"""

from __future__ import annotations

PLAIN_TEMPLATE = "### Instruction:\n{prompt}\n\n### Response:\n"


def render_prompt(tokenizer, prompt: str, chat_template: bool = True) -> str:
    """The text the model sees before it answers ``prompt``."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return PLAIN_TEMPLATE.format(prompt=prompt)


def render_example(tokenizer, prompt: str, response: str, chat_template: bool = True):
    """(prompt text, full text) for training: loss is taken on full[len(prompt text):]."""
    head = render_prompt(tokenizer, prompt, chat_template)
    eos = tokenizer.eos_token or ""
    return head, head + response + eos
