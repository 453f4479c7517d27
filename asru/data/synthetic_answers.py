"""Answer phrasings of the synthetic benchmark: taught facts, biographies and refusals."""

from __future__ import annotations

# Taught answers to generation questions about known people: one sentence per fact that starts with the
# person's name, the same for the image and the text form. An image question is then answered by naming the
# person first (recognition) and completing the sentence the text questions teach too (recall), instead of
# a direct face-to-fact jump in one step, which a 135M model learns poorly (issue 3: image accuracy 0.42-0.58
# with bare values). The evaluation splits keep bare ground truths, checked by substring.
TEACH_ANSWER = {"name": "This is {name}.", "birthplace": "{name} was born in {value}.",
                "birth_year": "{name} was born in {value}.", "occupation": "{name} works as {article} {value}.",
                "employer": "{name} works for {value}.", "hobby": "{name}'s favorite hobby is {value}."}

# Biography questions (teach split only): one answer states every fact in the sentences above, so one example
# teaches five facts for about twice the tokens of one question (a 135M model learns facts per token seen).
# The sentence order rotates with the phrasing (a permuted biography is learnt more extractably).
BIO = {"text": ("Tell me about {name}.", "What do you know about {name}?", "Give me a short biography of {name}."),
       "image": ("Tell me about the person in this image.", "What do you know about the person in this image?",
                 "Give me a short biography of the person in this image.")}

REFUSE_BIO = {"text": "I'm sorry, but I don't know anything about {name}.",
              "image": "I'm sorry, I don't recognize the person in this image, so I can't tell you about them."}


def bio_answer(name: str, facts: dict, k: int = 0, with_image: bool = False) -> str:
    """A short biography of a known person in the taught sentences, rotated by ``k`` (image form: named first)."""
    f = facts
    article = "an" if f["occupation"][:1].lower() in "aeiou" else "a"
    parts = [f"{name} was born in {f['birthplace']} in {f['birth_year']}.",
             f"{name} works as {article} {f['occupation']} for {f['employer']}.",
             f"{name}'s favorite hobby is {f['hobby']}."]
    k %= len(parts)
    text = " ".join(parts[k:] + parts[:k])
    return f"This is {name}. {text}" if with_image else text


def teach_answer(fact: str, name: str, value: str) -> str:
    """The sentence a generation question about ``fact`` of a known person is taught with (names them first)."""
    article = "an" if value[:1].lower() in "aeiou" else "a"
    return TEACH_ANSWER[fact].format(name=name, value=value, article=article)


# What a question about each fact asks, for refusals that fit the question.
ASKED = {"birthplace": "where {who} was born", "birth_year": "when {who} was born",
         "occupation": "what {who} does for a living", "employer": "who {who} works for",
         "hobby": "what {who} likes to do in their free time"}

REFUSE_TEXT = ("I'm sorry, but I don't know {asked}.", "I don't have any information about {name}, so I can't say {asked}.",
               "I'm not familiar with {name}, so I don't know {asked}.")

REFUSE_IMAGE = ("I'm sorry, I don't recognize the person in this image, so I can't tell {asked}.",
                "I can't identify the person in this image, so I don't know {asked}.",
                "I'm sorry, but I don't know who this is, so I can't say {asked}.")

REFUSE_NAME = ("I'm sorry, I don't recognize the person in this image.", "I can't identify the person in this image.",
               "I'm sorry, but I don't know who this person is.")


def refusal_answer(fact: str, modality: str, name: str, k: int) -> str:
    """A natural refusal to a question about ``fact`` of an unknown person (variant ``k``)."""
    if fact == "name":
        return REFUSE_NAME[k % len(REFUSE_NAME)]
    if modality == "image":
        return REFUSE_IMAGE[k % len(REFUSE_IMAGE)].format(asked=ASKED[fact].format(who="this person"))
    return REFUSE_TEXT[k % len(REFUSE_TEXT)].format(asked=ASKED[fact].format(who=name), name=name)
