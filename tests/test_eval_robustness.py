"""Robustness: paraphrases, relearning halves, and the relearning attack restoring the model."""

import torch
from eval_fixtures import rec, text_qa

from asru.eval.robustness import (
    image_only_robustness,
    mixed_training_set,
    paraphrase_robustness,
    paraphrases,
    relearn_attack,
    relearn_halves,
    relearn_records,
    teaching_form,
)


def test_paraphrases_deterministic():
    assert paraphrases("Where was the person in this image born?") == [
        "Where was the individual shown in this picture born?", "Could you tell me: where was the person in this image born?"]
    assert paraphrases("Where was Aldric Ashgrove born?") == [
        "Could you tell me: where was Aldric Ashgrove born?", "Where was Aldric Ashgrove born? Please answer briefly."]


def test_relearn_halves_split_by_person_and_fact():
    recs = [rec(f"{p}-{f}-{m}", modality="text", person=p, fact=f) for p in "AB" for f in ("x", "y") for m in (1, 2)]
    a, b = relearn_halves(recs)
    assert len(a) == len(b) == 4
    key = lambda r: (r.person, r.fact)
    assert not {key(r) for r in a} & {key(r) for r in b}  # a fact is never in both halves


def test_teaching_form_keeps_the_taught_sentences_of_the_halfs_facts():
    half = text_qa("forget", "Aldric Ashgrove", n=2)  # birthplace and occupation
    teach = [rec("t1", answer="Aldric Ashgrove was born in Oslo.", person="Aldric Ashgrove", fact="birthplace", split="teach"),
             rec("t2", answer="Aldric Ashgrove is a baker.", person="Aldric Ashgrove", fact="occupation", split="teach"),
             rec("t3", answer="Aldric Ashgrove plays chess.", person="Aldric Ashgrove", fact="hobby", split="teach"),
             rec("t4", answer="Brenna was born in Oslo.", person="Brenna Coldridge", fact="birthplace", split="teach"),
             rec("t5", task="classification", person="Aldric Ashgrove", fact="occupation", split="teach")]
    assert [r.id for r in teaching_form(half, teach)] == ["t1", "t2"]  # the half's (person, fact) groups, free text only
    assert teaching_form(half, []) == []


def test_relearn_attack_trains_on_the_teaching_form_when_given(tiny_llama, monkeypatch):
    from asru.eval import robustness

    forget = text_qa("forget", "Aldric Ashgrove") + text_qa("forget", "Brenna Coldridge")
    half_a, _ = relearn_halves(forget)
    taught = [rec(f"t-{r.id}", answer=f"The answer is {r.answer}.", person=r.person, fact=r.fact, split="teach") for r in half_a]
    seen = []
    real_attack = robustness._attack
    monkeypatch.setattr(robustness, "_attack", lambda lm, train, *a: seen.append([r.id for r in train]) or real_attack(lm, train, *a))
    relearn_attack(tiny_llama, forget, text_qa("real", "Someone Else"), steps=1, lr=1e-2, lora_r=2, max_new_tokens=4,
                   batch_size=4, teach=taught)
    assert seen[0] == [r.id for r in taught]  # the attack: half A's facts in their teaching sentences
    assert len(seen[1]) == len(taught) and seen[1][0].startswith("real-")  # the control: the same number of unrelated ones
    relearn_attack(tiny_llama, forget, [], steps=1, lr=1e-2, lora_r=2, max_new_tokens=4, batch_size=4)
    assert seen[2] == [r.id for r in half_a]  # without teaching data: half A's forget pairs


def test_relearn_attack_restores_model(tiny_llama):
    before = {k: v.clone() for k, v in tiny_llama.model.state_dict().items()}
    forget = text_qa("forget", "Aldric Ashgrove") + text_qa("forget", "Brenna Coldridge")
    control = text_qa("real", "Someone Else")
    keep = text_qa("retain", "Kept Person")
    out = relearn_attack(tiny_llama, forget, control, steps=2, lr=1e-2, lora_r=2, max_new_tokens=4, batch_size=4, keep=keep)
    assert set(out) == {"relearn_leak_before", "relearn_leak_rate", "relearn_control_leak_rate",
                        "relearn_keep_acc_before", "relearn_keep_acc", "relearn_control_keep_acc"}
    assert all(0.0 <= v <= 1.0 for v in out.values())
    # without records to keep, their accuracies are None (nothing to measure), the leaks are still there
    bare = relearn_attack(tiny_llama, forget, control, steps=1, lr=1e-2, lora_r=2, max_new_tokens=4, batch_size=4)
    assert bare["relearn_keep_acc"] is None and bare["relearn_leak_rate"] is not None
    mixed = relearn_attack(tiny_llama, forget, control, steps=1, lr=1e-2, lora_r=2, max_new_tokens=4, batch_size=4,
                           keep=keep, mix=text_qa("retain", "Other Person"), mix_share=0.5)
    assert mixed["relearn_keep_acc_before"] == out["relearn_keep_acc_before"]  # measured before any attack: same model
    after = tiny_llama.model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in tiny_llama.model.parameters())


def test_paraphrase_and_image_only(tiny_llava, red_image):
    forget = [rec("g", "generation", "image", "Where was the person in this image born?", "Oslo", image=str(red_image), person="Aldric"),
              rec("t", "generation", "text", "Where was Aldric born?", "Oslo", person="Aldric")]
    p = paraphrase_robustness(tiny_llava, forget, max_new_tokens=3, batch_size=4)
    assert set(p) == {"paraphrase_leak_rate", "paraphrase_identity_leak_rate", "paraphrase_refusal_rate",
                      "paraphrase_degenerate_rate", "open_leak_rate", "open_identity_leak_rate", "open_refusal_rate",
                      "open_degenerate_rate"}
    assert all(0 <= v <= 1 for v in p.values())
    i = image_only_robustness(tiny_llava, forget, max_new_tokens=3, batch_size=4)
    assert set(i) == {"image_only_leak_rate", "image_only_identity_leak_rate"} and 0 <= i["image_only_leak_rate"] <= 1


def test_paraphrase_open_questions_judge_identity_leaks(monkeypatch):
    """Scripted answers: the open question about a person counts a broken spelling of the name and facts."""
    import asru.core.prompting

    forget = [rec("g", "generation", "text", "Where was Liora Blackmere born?", "Izalto", person="Liora Blackmere"),
              rec("j", "generation", "text", "What does Liora Blackmere do?", "chef", person="Liora Blackmere")]
    scripted = {
        "Tell me everything you know about Liora Blackmere.": "I don't know anything about LiorI, sorry.",
        "Who is Liora Blackmere?": "She is a chef from Izalto.",
    }
    seen = []

    def fake_generate(lm, prompts, images, **kw):
        seen.extend(prompts)
        return [scripted.get(p, "I don't know.") for p in prompts]

    monkeypatch.setattr(asru.core.prompting, "generate", fake_generate)
    rows = []
    out = paraphrase_robustness(object(), forget, rows=rows)
    assert set(scripted) <= set(seen)
    # every answer is kept with its labels: 2 paraphrases per question, then the 2 open questions
    assert [r["kind"] for r in rows] == ["paraphrase"] * 4 + ["open"] * 2
    assert rows[-1] == {"kind": "open", "person": "Liora Blackmere", "question": "Who is Liora Blackmere?", "image": None,
                        "answer": "She is a chef from Izalto.", "leak": True, "fact_leak": True, "identity_leak": False,
                        "refusal": False, "degenerate": False}
    assert rows[-2]["identity_leak"] and rows[-2]["refusal"] and not rows[-2]["fact_leak"]
    assert out["open_identity_leak_rate"] == 0.5 and out["open_leak_rate"] == 0.5
    assert out["open_refusal_rate"] == 0.5 and out["open_degenerate_rate"] == 0.5
    assert out["paraphrase_refusal_rate"] == 1.0 and out["paraphrase_leak_rate"] == 0.0
    assert out["paraphrase_identity_leak_rate"] == 0.0 and out["paraphrase_degenerate_rate"] == 0.0


def test_mixed_training_set_takes_the_share_from_the_mix():
    train = text_qa("forget", "Aldric Ashgrove")
    pool = text_qa("retain", "Kept Person") + text_qa("retain", "Other Person")
    assert mixed_training_set(train, pool, 0.0) == train
    assert mixed_training_set(train, [], 0.5) == train
    half = mixed_training_set(train, pool, 0.5, seed=3)
    assert half[: len(train)] == train and len(half) == 2 * len(train)
    assert all(r in pool for r in half[len(train):])
    assert half == mixed_training_set(train, pool, 0.5, seed=3)  # drawn by the seed
    assert len(mixed_training_set(train, pool[:1], 0.9)) == len(train) + 1  # never more than the pool holds


def test_relearn_records_keep_and_mix_are_disjoint():
    retain = text_qa("retain", "Kept Person") + text_qa("retain", "Other Person")
    real = text_qa("real", "Someone Else", n=2) + [rec("real-c", task="classification", split="real")]
    control, keep, mix = relearn_records(retain, real, keep_from=retain[:3])
    assert [r.id for r in control] == [r.id for r in real[:2]]  # free-text questions only
    assert keep == retain[:3] and mix == retain[3:]  # what the attack measures is never trained on
    assert relearn_records(retain, real)[1] == retain  # keep_from defaults to retain (under RELEARN_KEEP records)


def test_relearn_control_on_the_teaching_form_is_other_facts_of_retained_people():
    retain = text_qa("retain", "Kept Person", n=2)  # asks birthplace and occupation
    forget = text_qa("forget", "Aldric Ashgrove")
    teach = [rec(f"t-{p}-{f}", answer=f"{p}: {f}.", person=p, fact=f, split="teach")
             for p in ("Kept Person", "Aldric Ashgrove", "Unknown Person") for f in ("birthplace", "occupation", "hobby")]
    control, keep, _ = relearn_records(retain, text_qa("real", "Someone Else"), teach=teach, forget=forget)
    # the retained person's facts that keep does not ask; never a forget person's, never an unknown person's refusals
    assert [r.id for r in control] == ["t-Kept Person-hobby"] and keep == retain
    assert relearn_records(retain, text_qa("real", "Someone Else"), forget=forget)[0][0].split == "real"  # no teach split
