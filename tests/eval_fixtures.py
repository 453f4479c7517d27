"""Hand-made records and a tiny synthetic benchmark for the evaluation and baseline tests."""

from __future__ import annotations

from asru.data.schema import Record


def rec(id, task="generation", modality="text", question="What is Aldric Ashgrove's job?", answer="baker", **kw) -> Record:
    """A Record with sensible defaults (image questions get a placeholder image path)."""
    if modality == "image" and "image" not in kw:
        kw["image"] = "/nonexistent/portrait.png"
    if task == "cloze" and "__" not in question:
        question = "The occupation of Aldric Ashgrove is __."
    if task == "classification" and "options" not in kw:
        kw["options"] = ("baker", "pilot", "chef", "nurse")
        kw.setdefault("label", 0)
    return Record(id=id, split=kw.pop("split", "forget"), task=task, modality=modality, question=question, answer=answer, **kw)


def text_qa(split="forget", person="Aldric Ashgrove", n=4) -> list[Record]:
    """Text-only generation records about one person (for text-only tiny models)."""
    facts = [("birthplace", "Where was {p} born?", "Oslo"), ("occupation", "What is {p}'s occupation?", "baker"),
             ("hobby", "What is {p}'s favorite hobby?", "chess"), ("birth_year", "In which year was {p} born?", "1971")]
    return [Record(id=f"{split}-{person}-{f}", split=split, task="generation", modality="text", question=q.format(p=person),
                   answer=a, person=person, fact=f) for f, q, a in facts[:n]]
