"""Quality metrics (exact values on hand-made answers), reference fluency, and the LLM judge over HTTP."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from eval_fixtures import rec

from asru.core.errors import AsruError
from asru.eval.judge import judge_answers, parse_scores
from asru.eval.quality import fluency, refusal_naturalness, text_quality


def test_text_quality_exact():
    qs = ["What is Aldric's job?", "Where is Oslo?", "Where was the person in this image born?", "Capital of Norway?"]
    ans = ["I don't know.", "I don't know.", "I don't know where this person was born.", "Oslo"]
    q = text_quality(qs, ans)
    assert q["refusal_diversity"] == pytest.approx(1 - 2 / 3)  # 2 of 3 refusals are the same string
    assert q["refusal_contextual"] == pytest.approx(1 / 3)  # only the third shares "person"/"born" with its question
    assert q["refusal_naturalness"] == pytest.approx(1 / 3)
    assert q["distinct_1"] == pytest.approx(10 / 18)
    assert q["garbled_rate"] == 0.0 and q["repetition"] == 0.0


def test_refusal_naturalness_edge_cases():
    assert refusal_naturalness(["q"], ["Paris"]) == {"refusal_diversity": None, "refusal_contextual": None, "refusal_naturalness": None}
    one = refusal_naturalness(["Where was Brenna born?"], ["Sorry, I have no information about Brenna."])
    assert one["refusal_diversity"] is None and one["refusal_contextual"] == 1.0
    loop = text_quality(["q", "q"], ["", "no no no no no no no no no"])
    assert loop["garbled_rate"] == 1.0 and loop["repetition"] == pytest.approx((0 + 6 / 7) / 2)  # 7 trigrams, 1 distinct


def test_fluency_uses_reference(tiny_llama, tiny_llama_path):
    from asru.core.models import load_model
    from asru.core.prompting import answer_logprobs

    recs = [rec("a", question="Where was Aldric born?"), rec("b", question="What is his job?"), rec("c")]
    answers = ["In Oslo.", "A baker.", ""]
    own = fluency(tiny_llama, recs, answers)
    lp = answer_logprobs(tiny_llama, [r.question for r in recs[:2]], answers[:2])
    assert own == pytest.approx(sum(s / n for s, n in lp) / 2)  # empty answers are skipped
    other = load_model(str(tiny_llama_path))
    with __import__("torch").no_grad():
        for p in other.model.parameters():
            p.mul_(0.5)
    assert fluency(tiny_llama, recs, answers, reference=other) != pytest.approx(own)
    assert fluency(tiny_llama, recs[2:], [""]) is None


def test_fluency_samples_scores_a_seeded_subset(tiny_llama):
    import random

    from asru.core.prompting import answer_logprobs

    recs = [rec(f"r{i}", question=f"Where was person {i} born?") for i in range(6)]
    answers = [f"In town number {i}." for i in range(5)] + [""]
    assert fluency(tiny_llama, recs, answers, samples=10) == pytest.approx(fluency(tiny_llama, recs, answers))
    picked = sorted(random.Random(3).sample(range(5), 2))  # only non-empty answers are candidates
    lp = answer_logprobs(tiny_llama, [recs[i].question for i in picked], [answers[i] for i in picked])
    assert fluency(tiny_llama, recs, answers, samples=2, seed=3) == pytest.approx(sum(s / n for s, n in lp) / 2)


class _Judge(BaseHTTPRequestHandler):
    replies: list = []  # noqa: RUF012
    seen: list = []  # noqa: RUF012

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.seen.append((self.path, self.headers.get("Authorization"), body))
        reply = _Judge.replies.pop(0)
        if reply == 500:
            self.send_response(500)
            self.end_headers()
            return
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture()
def judge_server():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_over_http(judge_server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    _Judge.replies = [
        'Sure: {"contextual_refusal": 5, "leakage": 4, "naturalness": 3}',
        '{"contextual_refusal": 1, "leakage": 9, "naturalness": 0}',  # clipped to 5 and 1
        "no json here",
    ]
    out = judge_answers(["q1", "q2", "q3"], ["Oslo"] * 3, ["I don't know.", "Oslo", "?"], judge_server, "judge-x",
                        api_key_env="TEST_JUDGE_KEY")
    assert out == {"judge_contextual_refusal": 3.0, "judge_leakage": 4.5, "judge_naturalness": 2.0, "judge_n": 2, "judge_unparsed": 1}
    path, auth, body = _Judge.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "judge-x" and body["messages"][1]["content"].startswith("Question: q1")


def test_judge_errors(judge_server):
    _Judge.replies = [500]
    with pytest.raises(AsruError, match="HTTP 500"):
        judge_answers(["q"], ["a"], ["b"], judge_server, "m")
    with pytest.raises(AsruError, match="cannot reach"):
        judge_answers(["q"], ["a"], ["b"], "http://127.0.0.1:9/v1", "m", timeout=2)
    with pytest.raises(ValueError):
        parse_scores('{"leakage": 1}')


def test_sampled_fluency_is_the_grpo_reward_on_seeded_samples(tiny_llama, tiny_llama_path):
    import torch

    from asru.core.models import load_model
    from asru.core.prompting import generate
    from asru.eval.quality import sampled_fluency
    from rewards.fluency import Fluency

    recs = [rec("a", question="Where was Aldric born?"), rec("b", question="What is his job?")]
    got = sampled_fluency(tiny_llama, recs, k=3, max_new_tokens=6, seed=7)
    torch.manual_seed(7)
    texts = generate(tiny_llama, [r.question for r in recs for _ in range(3)], [None] * 6, max_new_tokens=6,
                     do_sample=True, temperature=1.0, top_p=0.95)
    scores = Fluency(ref_model=tiny_llama.model, tokenizer=tiny_llama.tokenizer)(prompts=["a"] * 3 + ["b"] * 3, completions=texts)
    assert got["fluency_reward_sampled"] == pytest.approx(sum(scores) / 6)
    # the random tiny model never refuses
    assert got["sampled_refusal_rate"] == 0.0 and got["fluency_reward_sampled_refusals"] is None
    assert sampled_fluency(tiny_llama, recs, k=3, max_new_tokens=6, seed=7) == got  # seeded
    other = load_model(str(tiny_llama_path))
    with torch.no_grad():
        for p in other.model.parameters():
            p.mul_(0.5)
    again = sampled_fluency(tiny_llama, recs, reference=other, k=3, max_new_tokens=6, seed=7)
    assert again["fluency_reward_sampled"] != pytest.approx(got["fluency_reward_sampled"])
    assert sampled_fluency(tiny_llama, [], k=3) == {} and sampled_fluency(tiny_llama, recs, k=0) == {}


def test_sampled_fluency_refusals_only(tiny_llama, monkeypatch):
    import asru.core.prompting
    from asru.eval.quality import sampled_fluency
    from rewards.fluency import Fluency

    recs = [rec("a", question="Where was Aldric born?")]
    texts = ["I'm sorry, I don't know where Aldric was born.", "Oslo", "I can't tell you that, sorry.", "Bergen"]
    monkeypatch.setattr(asru.core.prompting, "generate", lambda *a, **kw: list(texts))  # the scoring, on fixed samples
    got = sampled_fluency(tiny_llama, recs, k=4)
    scores = Fluency(ref_model=tiny_llama.model, tokenizer=tiny_llama.tokenizer)(prompts=["a"] * 4, completions=texts)
    assert got["sampled_refusal_rate"] == 0.5
    assert got["fluency_reward_sampled_refusals"] == pytest.approx((scores[0] + scores[2]) / 2)
    assert got["fluency_reward_sampled"] == pytest.approx(sum(scores) / 4)
