"""Exact values of the built-in rewards on hand-written completions (called the way TRL calls them)."""

import math
from types import SimpleNamespace

import pytest
import torch

from asru.core.errors import AsruError
from rewards import completion_text, load_reward
from rewards.fluency import Fluency, group_diversity, text_fluency
from rewards.forget import forget_score
from rewards.reasoning import reasoning_score
from rewards.retain import retain_score
from rewards.text import is_refusal


def call(name, completions, role, answer, prompts=None, **extra):
    """Call a built-in with TRL's keyword convention (plus trainer_state, as TRL adds)."""
    fn = load_reward(name)
    n = len(completions)
    prompts = prompts if prompts is not None else [f"q{i}" for i in range(n)]
    return fn(
        prompts=prompts,
        completions=completions,
        completion_ids=None,
        role=role if isinstance(role, list) else [role] * n,
        answer=answer if isinstance(answer, list) else [answer] * n,
        trainer_state=None,
        **extra,
    )


# -- completion_text -------------------------------------------------------------------------
def test_completion_text_formats():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "Paris."}]) == "Paris."
    assert completion_text({"role": "assistant", "content": "Paris."}) == "Paris."
    parts = [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "He is "}, {"type": "image"}, {"type": "text", "text": "Tom."}],
        }
    ]
    assert completion_text(parts) == "He is Tom."
    thinking = [{"role": "assistant", "content": "No idea.", "reasoning_content": "It is Tom"}]
    assert completion_text(thinking) == "<think>It is Tom</think>No idea."
    convo = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Tom"}]
    assert completion_text(convo) == "Tom"
    assert completion_text(None) == ""
    with pytest.raises(TypeError):
        completion_text(3.5)


# -- forget ----------------------------------------------------------------------------------
FORGET_CASES = [
    ("He was born in Paris.", "Paris", 0.0),  # leak
    ("I'm not sure, but I think it was Paris.", "Paris", 0.0),  # leak is checked before refusal
    ("I don't know where he was born.", "Paris", 1.0),  # refusal
    ("A painter, I think.", "She was a nurse in Paris, France", 0.5),  # 0 < R-L = 2/11 < 0.4
    ("He was born in a small town.", "He was born in Paris", 0.1),  # R-L = 2/3, above the band
    ("She likes painting.", "Paris", 0.1),  # no overlap
    ("Lyon", "Paris", 0.1),
    ("<think>The person is from Paris.</think>I'd rather not say.", "Paris", 0.0),  # leak inside reasoning
    ("<think>Private person.</think>I can't share that.", "Paris", 1.0),
    ("The code is 19901.", "1990", 0.1),  # not a leak: token boundary
]


def test_forget_score_rouge_band_hand_values():
    from rewards.text import rouge_l

    # "he was born in a small town" vs "he was born in paris": LCS 4, P 4/7, R 4/5, F 2/3 -> not in (0, 0.4)
    assert rouge_l("He was born in a small town.", "He was born in Paris") == pytest.approx(2 / 3)
    assert forget_score("He was born in a small town.", "He was born in Paris") == 0.1
    # "a painter i think" vs "she was a nurse in paris france": LCS "a" = 1, P 1/4, R 1/7 -> F 2/11
    assert rouge_l("A painter, I think.", "She was a nurse in Paris, France") == pytest.approx(2 / 11)
    assert forget_score("A painter, I think.", "She was a nurse in Paris, France") == 0.5


@pytest.mark.parametrize("text, truth, expected", FORGET_CASES)
def test_forget_score(text, truth, expected):
    assert forget_score(text, truth) == expected


def test_forget_reward_none_for_other_roles_and_conversational():
    completions = [
        [{"role": "assistant", "content": "He was born in Paris."}],
        [{"role": "assistant", "content": [{"type": "text", "text": "I have no idea, sorry."}]}],
        [{"role": "assistant", "content": "He was born in Paris."}],
        "A painter, I think.",
    ]
    out = call(
        "forget",
        completions,
        role=["forget", "forget", "retain", "forget"],
        answer=["Paris", "Paris", "Paris", "She was a nurse in Paris, France"],
    )
    assert out == [0.0, 1.0, None, 0.5]


def test_forget_reward_uses_split_when_role_missing():
    fn = load_reward("forget")
    out = fn(prompts=["q", "q"], completions=["Paris", "No idea."], split=["forget", "test"], answer=["Paris", "x"])
    assert out == [0.0, None]


def test_forget_reward_missing_columns():
    fn = load_reward("forget")
    with pytest.raises(AsruError, match="column 'role'"):
        fn(prompts=["q"], completions=["a"], answer=["x"])
    with pytest.raises(AsruError, match="column 'answer'"):
        fn(prompts=["q"], completions=["a"], role=["forget"])
    with pytest.raises(AsruError, match="2 values for 1 completions"):
        fn(prompts=["q"], completions=["a"], role=["forget", "forget"], answer=["x"])


# -- retain ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, truth, expected",
    [
        ("He was born in Paris.", "Paris", 1.0),
        ("I'm not sure, maybe Paris?", "Paris", 1.0),  # correct answer wins over the hedge
        ("I don't know.", "Paris", 0.0),
        ("Sorry, I cannot provide that.", "Paris", 0.0),
        # R-L("she was a nurse in lyon", "she was a nurse in paris") = 5/6 > 0.6 -> 0.5
        ("She was a nurse in Lyon.", "She was a nurse in Paris", 0.5),
        # R-L("she was a painter", "she was a nurse in paris") = LCS 3, P 3/4, R 3/6 -> 0.6, not > 0.6
        ("She was a painter.", "She was a nurse in Paris", 0.1),
        ("Lyon", "Paris", 0.1),
        ("<think>Born in Paris.</think>Lyon.", "Paris", 0.1),  # only the final answer counts
        ("<think>Born in Paris.</think>He was born in Paris.", "Paris", 1.0),
        ("<think>cut off before answering Paris", "Paris", 0.1),
    ],
)
def test_retain_score(text, truth, expected):
    assert retain_score(text, truth) == expected


def test_retain_reward_roles_and_conversational():
    completions = [
        [{"role": "assistant", "content": "He was born in Paris."}],
        [{"role": "assistant", "content": "I don't know."}],
        "He was born in Paris.",
        "x",
    ]
    out = call("retain", completions, role=["retain", "retain", "forget", "test"], answer="Paris")
    assert out == [1.0, 0.0, None, None]


# -- reasoning -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, truth, role, expected",
    [
        ("<think>She is from Paris.</think>I can't share that.", "Paris", "forget", 0.0),  # explicit leak
        ("<think>A private person.</think>He lives in Paris.", "Paris", "forget", 0.0),  # leak in answer
        ("<think>A private person; I should not guess.</think>I can't share that.", "Paris", "forget", 1.0),
        ("<think>A private person.</think>He lives in Lyon.", "Paris", "forget", 0.5),
        ("<think>Thinking without end", "Paris", "forget", 0.5),
        ("<think>Capital of France.</think>Paris.", "Paris", "retain", 1.0),
        ("<think></think>Paris.", "Paris", "retain", 0.5),
        ("<think>Capital of France.</think>Lyon.", "Paris", "retain", 0.0),
        ("<think>Capital is Paris</think>I don't know.", "Paris", "retain", 0.0),
        ("Reasoned in the prompt template.</think>Paris.", "Paris", "retain", 1.0),
        ("Paris.", "Paris", "retain", None),  # no think tag
        ("<think>x</think>Paris.", "Paris", "test", None),  # other role
    ],
)
def test_reasoning_score(text, truth, role, expected):
    assert reasoning_score(text, truth, role) == expected


def test_reasoning_reward_conversational_thinking_field():
    completions = [
        [{"role": "assistant", "content": "I can't share that.", "reasoning_content": "Born in Paris."}],
        [{"role": "assistant", "content": "I can't share that.", "reasoning_content": "Private person."}],
        [{"role": "assistant", "content": "Paris."}],
    ]
    assert call("reasoning", completions, role="forget", answer="Paris") == [0.0, 1.0, None]


# -- fluency ---------------------------------------------------------------------------------
def test_group_diversity_hand_values():
    answers = ["I don't know.", "I don't know.", "I'm not sure who this is.", "Paris"]
    keys = ["p", "p", "p", "p"]
    # bigram sets: A = {i don, don t, t know} (x2), B = 6 bigrams sharing none with A
    # refusal 1: J(A,A)=1, J(A,B)=0, J(A,{paris})=0 -> 1 - 1/3; refusal 3: 1 - 0; "Paris" is no refusal -> 1
    assert group_diversity(answers, keys) == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    # different prompts: no group, full diversity
    assert group_diversity(answers[:2], ["p", "q"]) == [1.0, 1.0]


def test_text_fluency():
    assert text_fluency("!!!") == 0.0
    assert text_fluency("He was born in Paris.") == 1.0
    assert text_fluency("I don't know.", div=0.0) == 0.5
    # 12 tokens "a b c" x4 -> 10 trigrams, 3 distinct -> rep 0.7; bigrams 11, 3 distinct -> 8/11 > 0.5 -> garbled
    assert text_fluency("a b c a b c a b c a b c") == 0.0
    # "the cat sat on the cat sat" : 7 tokens (< 8, not garbled), trigrams 5, distinct 4 -> rep 1/5
    assert text_fluency("The cat sat on the cat sat.") == pytest.approx(0.8)


def test_fluency_reward_groups_and_roles():
    completions = [
        "I don't know.",
        [{"role": "assistant", "content": "I don't know."}],
        "I'm not sure who this is.",
        "@@@ ### !!!",
        "I don't know.",  # same words, different prompt: its own group of one
    ]
    prompts = ["Who is he?"] * 4 + ["Where was she born?"]
    out = call("fluency", completions, role=["forget"] * 4 + ["retain"], answer="x", prompts=prompts)
    # group of 4: J with the other 3 completions: refusal 0: (1 + 0 + 0)/3 -> div 2/3 -> 0.5 + 1/3
    assert out == pytest.approx([5 / 6, 5 / 6, 1.0, 0.0, 1.0])
    # roles=[forget]: the retain completion is left out (None), the forget scores are unchanged
    only_forget = load_reward("fluency", options={"roles": ["forget"]})
    out = only_forget(prompts, completions, role=["forget"] * 4 + ["retain"], answer=["x"] * 5)
    assert out[:4] == pytest.approx([5 / 6, 5 / 6, 1.0, 0.0]) and out[4] is None


def test_fluency_same_prompt_different_images_are_different_groups():
    completions = ["I don't know.", "I don't know."]
    fn = load_reward("fluency")
    same = fn(prompts=["Who is this?"] * 2, completions=completions, image=["a.png", "a.png"])
    diff = fn(prompts=["Who is this?"] * 2, completions=completions, image=["a.png", "b.png"])
    assert same == pytest.approx([0.5, 0.5])
    assert diff == pytest.approx([1.0, 1.0])


def test_fluency_groups_decoded_images_by_content():
    from PIL import Image

    red = [Image.new("RGB", (64, 64), (200, 0, 0)) for _ in range(2)]  # two objects, same picture
    blue = Image.new("RGB", (64, 64), (0, 0, 200))
    fn = load_reward("fluency")
    completions = ["I don't know.", "I don't know.", "I don't know."]
    out = fn(prompts=["Who is this?"] * 3, completions=completions, image=[red[0], red[1], blue])
    # the two red rows form a group of identical refusals (div 0); the blue row is alone (div 1)
    assert out == pytest.approx([0.5, 0.5, 1.0])
    prompt = [{"role": "user", "content": [{"type": "image", "image": red[0]}, {"type": "text", "text": "Who?"}]}]
    same = [{"role": "user", "content": [{"type": "image", "image": red[1]}, {"type": "text", "text": "Who?"}]}]
    assert fn(prompts=[prompt, same], completions=completions[:2]) == pytest.approx([0.5, 0.5])


def test_group_keys_use_answer_column():
    from rewards.interface import group_keys

    keys = group_keys(["Who?", "Who?", "Who?"], {"answer": ["Tom", "Tom", "Ann"]})
    assert keys[0] == keys[1] != keys[2]


def test_fluency_conversational_prompts_group_by_content():
    prompt = [{"role": "user", "content": "Who is he?"}]
    fn = load_reward("fluency")
    out = fn(prompts=[prompt, list(prompt)], completions=["I don't know.", "I don't know."])
    assert out == pytest.approx([0.5, 0.5])


class _UniformLM(torch.nn.Module):
    """Logits all zero: every token has log-prob -log(vocab)."""

    def __init__(self, vocab=8):
        super().__init__()
        self.vocab = vocab
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(bos_token_id=0)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None):
        self.calls += 1
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab) + self.w)


class _CountingLM(_UniformLM):
    """Predicts token (t + 1) % vocab after token t with near certainty."""

    def forward(self, input_ids, attention_mask=None):
        nxt = (input_ids + 1) % self.vocab
        return SimpleNamespace(logits=torch.nn.functional.one_hot(nxt, self.vocab).float() * 20.0)


def test_fluency_reference_model_term_exact():
    lm = _UniformLM(vocab=8)
    fn = load_reward("fluency", options={"lm_center": -math.log(8)}, context={"ref_model": lm, "unused": 1})
    assert fn.__name__ == "fluency"
    ids = [[1, 2, 3], [4, 5], [6]]
    out = fn(prompts=["a", "b", "c"], completions=["He was born in Paris.", "Lyon", "!!!"], completion_ids=ids)
    # uniform: mean log-prob = -log 8 = lm_center -> sigmoid(0) = 0.5; garbled stays 0 (not scored)
    assert out == pytest.approx([0.5, 0.5, 0.0])
    assert lm.calls == 1


def test_fluency_reference_model_prefers_likely_tokens():
    fn = Fluency(ref_model=_CountingLM(vocab=8))
    likely, unlikely = fn(prompts=["a", "b"], completions=["Paris", "Lyon"], completion_ids=[[1, 2, 3], [5, 2, 7]])
    assert likely == pytest.approx(1 / (1 + math.exp(-4)), abs=1e-3)  # mean log-prob ~ 0
    assert unlikely < 0.01


def test_fluency_reference_model_can_be_disabled_and_needs_ids_or_tokenizer():
    lm = _UniformLM()
    off = load_reward("fluency", options={"use_ref_model": False}, context={"ref_model": lm})
    assert off(prompts=["a"], completions=["Paris"], completion_ids=[[1, 2]]) == [1.0]
    assert lm.calls == 0
    on = load_reward("fluency", context={"ref_model": lm})
    with pytest.raises(AsruError, match="tokenizer"):
        on(prompts=["a"], completions=["Paris"])


def test_fluency_bad_options():
    with pytest.raises(AsruError, match="unknown option"):
        load_reward("fluency", options={"nn": 2})
    with pytest.raises(AsruError, match="lm_scale"):
        load_reward("fluency", options={"lm_scale": 0})
    with pytest.raises(AsruError, match="roles must be"):
        load_reward("fluency", options={"roles": []})


def test_fluency_with_real_tiny_model_matches_manual_logprobs(tiny_llama):
    """With a real HF causal LM + tokenizer: padding in a batch must not change any score."""
    model, tok = tiny_llama.model, tiny_llama.tokenizer
    texts = ["He was born in Paris.", "Lyon", "She works as a nurse in a large hospital."]
    fn = load_reward("fluency", context={"ref_model": model, "tokenizer": tok})
    batched = fn(prompts=["a", "b", "c"], completions=texts)
    assert len({len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts}) == 3  # padding is exercised
    for text, score in zip(texts, batched):
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        if ids.shape[1] < 2:  # no BOS in the Qwen tokenizer: a one-token text has nothing to score
            assert score == 1.0
            continue
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        mean = logp.gather(-1, ids[0, 1:, None]).mean().item()  # tokens 2..L given the previous ones
        assert score == pytest.approx(1 / (1 + math.exp(-(mean + 4.0))), abs=1e-5)


def test_corpus_fluency_penalises_one_canned_refusal():
    from rewards.fluency import corpus_fluency

    canned = ["I don't know.", "I don't know.", "I don't know."]
    varied = ["I don't know where he studied.", "Her birthplace is not something I can share.", "He was born in Paris."]
    assert corpus_fluency(canned) == pytest.approx(0.5)  # every refusal has Jaccard 1 with the others
    # varied: bigrams r1 = {i don, don t, t know, know where, where he, he studied} and r2 = {her birthplace,
    # birthplace is, is not, not something, something i, i can, can share} share nothing, nor with the answer
    # {he was, was born, born in, in paris} -> both refusals have div 1; the answer is no refusal -> 1
    assert is_refusal(varied[0]) and is_refusal(varied[1]) and not is_refusal(varied[2])
    assert corpus_fluency(varied) == pytest.approx(1.0)
    assert corpus_fluency([]) == 0.0
