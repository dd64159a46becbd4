"""Model-based objectives: the reward-model classifier, the judge's verdict parser, the vLLM judge, the
remote HTTP judge (against a fake server on 127.0.0.1), their config checks, and the worker around them.

Expected values come from the documented rules or from running the tiny classifier directly."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cosmo.config import ConfigError, HttpJudgeConfig, RewardModelConfig, load_config
from cosmo.data import Sample
from cosmo.trajectory import Trajectory
from rewards.objectives.base import Item
from rewards.objectives.judge import (
    DEFAULT_RUBRIC,
    JudgeParseError,
    load_rubric,
    parse_judge_score,
    render_rubric,
    to_unit,
)

ROW = Sample(id="row-7", task="over_refusal", prompt="How do I kill a Python process?", answer=None)
REFUSE = "<think>Harmful.</think><answer>I can't help with that.</answer>"
HELP = "<think>Easy.</think><answer>Run kill -9 with the process id.</answer>"
BASE = ["model.path=m", "data.dir=d"]


# --- the judge's verdict parser and rubric --------------------------------------------------------------
@pytest.mark.parametrize(
    ("verdict", "raw"),
    [
        ("The reply is fine.\nScore: 7", 7.0),
        ("Score: 7.", 7.0),
        ("**Score:** 8", 8.0),
        ("__Score__: 2", 2.0),
        ("score = 3", 3.0),
        ("Score: 9/10", 9.0),
        ("Final score: 9.5 overall", 9.5),
        ("SCORE: 10", 10.0),
        ("Score: 1", 1.0),
        ("Score: 6\nSo, again: Score: 6", 6.0),  # repeated, consistent
    ],
)
def test_parse_judge_score_accepts_documented_forms(verdict, raw):
    assert parse_judge_score(verdict) == raw


@pytest.mark.parametrize(
    ("verdict", "why"),
    [
        ("", "no 'Score: N'"),
        ("The reply is helpful. 8/10", "no 'Score: N'"),
        ("Score: N where N is an integer from 1 to 10", "no 'Score: N'"),
        ("Score: 1-10", "no 'Score: N'"),  # a restated scale, not a verdict
        ("Score: 10-20", "no 'Score: N'"),
        ("Score: nan", "no 'Score: N'"),
        ("Score: inf", "no 'Score: N'"),
        ("subscore: 4", "no 'Score: N'"),
        ("Score: 0", "outside"),
        ("Score: 11", "outside"),
        ("Score: -3", "outside"),
        ("Score: 7/5", "out of 5"),
        ("Score: 3\nScore: 8", "conflicting"),
    ],
)
def test_parse_judge_score_rejects_everything_else(verdict, why):
    with pytest.raises(JudgeParseError, match=why):
        parse_judge_score(verdict)


def test_parse_judge_score_rejects_non_text():
    with pytest.raises(JudgeParseError, match="not text"):
        parse_judge_score(None)  # type: ignore[arg-type]


def test_judge_score_maps_the_scale_linearly_onto_unit_interval():
    def value(text: str, low: float = 1, high: float = 10) -> float:  # as the judge objective maps a verdict
        return to_unit(parse_judge_score(text, low, high), low, high)

    assert value("Score: 1") == 0.0
    assert value("Score: 10") == 1.0
    assert value("Score: 4") == pytest.approx(3 / 9)
    assert value("Score: 5/5", 0, 5) == 1.0 and value("Score: 0", 0, 5) == 0.0
    with pytest.raises(JudgeParseError, match="out of 10"):
        value("Score: 3/10", 0, 5)


def test_rubric_shows_the_row_and_response_and_bad_rubrics_fail_at_load(tmp_path):
    item = Item(Sample(id="x", task="reasoning", prompt="2+2?", answer="4"), "<think>t</think><answer>5</answer>", "x")
    text = render_rubric(load_rubric("default"), item, item.text)
    assert "2+2?" in text and "Reference answer (may be empty): 4" in text and "<answer>5</answer>" in text
    assert "must be refused (it asks for harmful help): no" in text
    assert load_rubric("default") == DEFAULT_RUBRIC
    bad = tmp_path / "bad.txt"
    bad.write_text("Grade {reply}")
    with pytest.raises(ValueError, match="bad template field"):
        load_rubric(str(bad))
    blind = tmp_path / "blind.txt"
    blind.write_text("Grade the answer to {prompt}. Score: N")
    with pytest.raises(ValueError, match="never shows the judge"):
        load_rubric(str(blind))


# --- reward_model: a tiny random classifier built offline ----------------------------------------------
def _build_classifier(path, num_labels: int, seed: int = 0, id2label: dict | None = None):
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from cosmo.models.tokenizer import build_tokenizer

    tok = build_tokenizer([ROW.prompt, REFUSE, HELP, "the quick brown fox jumps over the lazy dog"], vocab_size=300)
    cfg = Qwen2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=512, num_labels=num_labels,
                      pad_token_id=tok.pad_token_id, **({"id2label": id2label} if id2label else {}))
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("rm") / "one-logit"
    model, tok = _build_classifier(path, num_labels=1)
    return path, model, tok


def _direct_logits(model, tok, prompt: str, response: str, max_length: int = 10_000):
    """The classifier run by hand on one chat-formatted (prompt, response), no padding."""
    import torch

    text = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                   tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"][-max_length:]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].tolist()


def test_reward_model_is_sigmoid_of_the_logit_and_batching_changes_nothing(classifier):
    from rewards.objectives.reward_model import RewardModelObjective

    path, model, tok = classifier
    texts = [HELP, REFUSE, "x", HELP + " and some more words to make it the longest"]
    rm = RewardModelObjective(RewardModelConfig(path=str(path), batch_size=3))  # batches of 3 and 1, padded
    outcomes = rm.score([Item(ROW, t, ROW.id) for t in texts])
    for text, outcome in zip(texts, outcomes, strict=True):
        (logit,) = _direct_logits(model, tok, ROW.prompt, text)
        assert outcome.error is None
        assert outcome.value == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-5)
        assert outcome.info["logit"] == pytest.approx(logit, abs=1e-4)
    assert rm.stats.as_dict()["items"] == 4 and rm.stats.as_dict()["failed"] == 0


def test_reward_model_truncates_from_the_left_and_answer_part_option(classifier):
    from rewards.objectives.reward_model import RewardModelObjective

    path, model, tok = classifier
    long = "<think>" + "lots of thinking " * 80 + "</think><answer>kill -9</answer>"
    rm = RewardModelObjective(RewardModelConfig(path=str(path), max_length=40))
    (logit,) = _direct_logits(model, tok, ROW.prompt, long, max_length=40)  # only the last 40 tokens
    assert rm.score([Item(ROW, long, ROW.id)])[0].value == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-5)
    answer_only = RewardModelObjective(RewardModelConfig(path=str(path), response_part="answer"))
    a, b = answer_only.score([Item(ROW, "<think>one</think><answer>same</answer>", ROW.id),
                              Item(ROW, "<think>two other</think><answer>same</answer>", ROW.id)])
    (logit,) = _direct_logits(model, tok, ROW.prompt, "same")
    expected = 1 / (1 + math.exp(-logit))
    assert a.value == pytest.approx(expected, abs=1e-5) and b.value == pytest.approx(expected, abs=1e-5)


def test_reward_model_zero_head_scores_one_half_and_nan_is_an_error(tmp_path):
    import torch

    from rewards.objectives.reward_model import RewardModelObjective

    model, tok = _build_classifier(tmp_path / "zero", num_labels=1)
    with torch.no_grad():
        model.score.weight.zero_()  # logit 0 for every input -> sigmoid 0.5
    model.save_pretrained(tmp_path / "zero")
    rm = RewardModelObjective(RewardModelConfig(path=str(tmp_path / "zero")))
    assert [o.value for o in rm.score([Item(ROW, t, ROW.id) for t in (HELP, REFUSE)])] == [0.5, 0.5]
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    tok.save_pretrained(tmp_path / "nan")
    (outcome,) = RewardModelObjective(RewardModelConfig(path=str(tmp_path / "nan"))).score([Item(ROW, HELP, ROW.id)])
    assert outcome.value is None and "non-finite" in outcome.error


def test_reward_model_label_probability(tmp_path):
    import torch

    from rewards.objectives.reward_model import RewardModelObjective

    labels = {0: "unsafe", 1: "neutral", 2: "safe"}
    model, tok = _build_classifier(tmp_path / "three", num_labels=3, seed=1, id2label=labels)
    rm = RewardModelObjective(RewardModelConfig(path=str(tmp_path / "three"), label="safe"))
    (outcome,) = rm.score([Item(ROW, HELP, ROW.id)])
    expected = torch.softmax(torch.tensor(_direct_logits(model, tok, ROW.prompt, HELP)), dim=-1)[2].item()
    assert outcome.value == pytest.approx(expected, abs=1e-5)
    by_index = RewardModelObjective(RewardModelConfig(path=str(tmp_path / "three"), label="2"))
    assert by_index.score([Item(ROW, HELP, ROW.id)])[0].value == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="3 labels; set reward.reward_model.label"):
        RewardModelObjective(RewardModelConfig(path=str(tmp_path / "three")))
    with pytest.raises(ValueError, match="neither a name"):
        RewardModelObjective(RewardModelConfig(path=str(tmp_path / "three"), label="toxic"))


def test_worker_loads_the_reward_model_once_and_routes_it_by_task(classifier, builtin_data, monkeypatch):
    import transformers

    from cosmo.data import load_jsonl
    from rewards.pool import RewardWorker

    path, model, tok = classifier
    loads = []
    real = transformers.AutoModelForSequenceClassification.from_pretrained

    def counting(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", counting)
    cfg = load_config(None, [*BASE, f"reward.reward_model.path={path}", "reward.weights.over_refusal.reward_model=2",
                             "reward.weights.over_refusal.helpful=0"])
    rows = load_jsonl(builtin_data["train"])
    benign = next(i for i, r in enumerate(rows) if r.task == "over_refusal")
    safety = next(i for i, r in enumerate(rows) if r.task == "safety")
    worker = RewardWorker(str(builtin_data["train"]), cfg.reward)
    for _ in range(2):
        scored = worker.score([Trajectory(benign, rows[benign].id, [1], [2], [-0.1], HELP, "stop", 0),
                               Trajectory(safety, rows[safety].id, [1], [2], [-0.1], REFUSE, "stop", 0)])
    assert loads == [str(path)]  # one load for the worker's life, not one per call
    (logit,) = _direct_logits(model, tok, rows[benign].prompt, HELP)
    value = 1 / (1 + math.exp(-logit))
    assert scored[0].rewards["reward_model"] == pytest.approx(value, abs=1e-5)
    assert scored[0].total == pytest.approx(2 * value + 0.5 * 1.0)  # 2 x reward_model + 0.5 x format
    assert "reward_model" not in scored[1].rewards and scored[1].total == pytest.approx(1.5)  # not routed there
    assert worker.diagnostics()["reward_model"]["items"] == 2  # the benign row, twice


# --- http_judge against a fake server -------------------------------------------------------------------
TOKEN = "tok-SECRET-5d1c9e"
TOKEN_ENV = "COSMO_TEST_JUDGE_TOKEN"


class FakeJudge(BaseHTTPRequestHandler):
    """Behaves as the response under judgement asks: `[mode:NAME]` inside it picks the answer."""

    requests: list[dict] = []
    seen_keys: dict[str, int] = {}

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers.get("Idempotency-Key", "")
        FakeJudge.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        FakeJudge.seen_keys[key] = FakeJudge.seen_keys.get(key, 0) + 1
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, '{"error": "bad token"}')
        content = body["messages"][0]["content"]
        found = re.search(r"\[mode:(\w+)\]", content)
        mode = found.group(1) if found else "ok7"

        def verdict(text):
            return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})

        if mode.startswith("ok"):
            return self._send(200, verdict(f"Looks right.\nScore: {mode[2:]}"))
        if mode == "sleep":
            time.sleep(2.0)
            return self._send(200, verdict("Score: 9"))
        if mode == "500":
            return self._send(500, "internal error")
        if mode == "500once":
            return self._send(500, "busy") if FakeJudge.seen_keys[key] == 1 else self._send(200, verdict("Score: 8"))
        if mode == "nan":
            return self._send(200, '{"choices": [{"message": {"content": NaN}}]}')
        if mode == "nanscore":
            return self._send(200, verdict("Score: NaN"))
        if mode == "range":
            return self._send(200, verdict("Score: 42"))
        if mode == "garbage":
            return self._send(200, "<html>oops</html>")
        if mode == "nofield":
            return self._send(200, '{"result": 7}')
        if mode == "echo":  # a misbehaving server that echoes the credentials back
            return self._send(400, json.dumps({"error": "bad request", "auth": self.headers["Authorization"]}))
        return self._send(404, "unknown mode")


@pytest.fixture
def judge_server():
    FakeJudge.requests, FakeJudge.seen_keys = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    server.shutdown()
    server.server_close()


def _http_judge(url, monkeypatch, **overrides):
    from rewards.objectives.http_judge import HttpJudge

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    waits: list[float] = []
    settings = {"timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.01, "max_concurrency": 4, **overrides}
    cfg = HttpJudgeConfig(url=url, token_env=TOKEN_ENV, **settings)
    return HttpJudge(cfg, sleep=waits.append), waits


def _item(mode: str, sample_id: str = "row-7") -> Item:
    return Item(ROW, f"<think>t</think><answer>[mode:{mode}] answer</answer>", sample_id)


def test_http_judge_scores_sends_token_and_idempotency_key(judge_server, monkeypatch):
    judge, waits = _http_judge(judge_server, monkeypatch)
    a, b = judge.score([_item("ok7"), _item("ok10")])
    assert (a.value, a.error, b.value) == (pytest.approx(6 / 9), None, 1.0)  # (7 - 1) / 9 and (10 - 1) / 9
    assert a.info["attempts"] == 1 and waits == []
    req = next(r for r in FakeJudge.requests if "[mode:ok7]" in r["body"]["messages"][0]["content"])
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert req["body"]["model"] == "judge" and req["body"]["temperature"] == 0 and req["body"]["max_tokens"] == 256
    import hashlib

    digest = hashlib.sha256(_item("ok7").text.encode()).hexdigest()[:16]
    assert req["headers"]["Idempotency-Key"] == f"row-7:http_judge:{digest}"
    assert len({r["headers"]["Idempotency-Key"] for r in FakeJudge.requests}) == 2  # two responses, two keys


def test_judge_cannot_tell_on_a_must_refuse_row_is_a_reward_the_gate_does_not_pay(judge_server, monkeypatch):
    from cosmo.config import GateConfig
    from rewards.combine import gate_fires

    harmful = Sample(id="h1", task="safety", prompt="How do I rob a bank?", should_refuse=True)
    judge, _ = _http_judge(judge_server, monkeypatch)
    unsure, refused = judge.score([Item(harmful, f"<think>t</think><answer>[mode:ok{n}] Well.</answer>", "h1")
                                   for n in (5, 9)])
    assert (unsure.value, unsure.error, refused.value) == (pytest.approx(4 / 9), None, pytest.approx(8 / 9))
    sent = next(r for r in FakeJudge.requests if "[mode:ok5]" in r["body"]["messages"][0]["content"])
    assert "cannot tell to be a refusal or help\n  scores 5." in sent["body"]["messages"][0]["content"]
    gate = GateConfig(objective="http_judge")  # threshold 0.5: 4/9 is below it, 8/9 is not
    assert gate_fires(harmful, {"http_judge": unsure.value}, gate)
    assert not gate_fires(harmful, {"http_judge": refused.value}, gate)
    judge.close()


def test_http_judge_retries_with_backoff_and_the_same_key(judge_server, monkeypatch):
    judge, waits = _http_judge(judge_server, monkeypatch)
    (outcome,) = judge.score([_item("500once")])
    assert outcome.value == pytest.approx(7 / 9) and outcome.info["retries"] == 1
    assert waits == [0.01]  # backoff_s x 2^0
    assert list(FakeJudge.seen_keys.values()) == [2]  # both attempts carried one key
    (outcome,) = judge.score([_item("500")])
    assert outcome.value is None and "HTTP 500; gave up after 3 attempts" in outcome.error
    assert waits == [0.01, 0.01, 0.02]  # then 0.01, 0.02 for the three attempts of the second item
    assert judge.stats.as_dict()["retries"] == 1 + 2


def test_http_judge_timeout_is_per_attempt_and_retried(judge_server, monkeypatch):
    judge, waits = _http_judge(judge_server, monkeypatch, max_retries=1)
    started = time.perf_counter()
    (outcome,) = judge.score([_item("sleep")])
    elapsed = time.perf_counter() - started
    assert outcome.value is None and "timed out after 0.3 s" in outcome.error and "2 attempts" in outcome.error
    assert 0.6 <= elapsed < 1.9  # two 0.3 s attempts, not the server's 2 s answer
    assert len([r for r in FakeJudge.requests if "[mode:sleep]" in r["body"]["messages"][0]["content"]]) == 2


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("nan", "content is float, not text"),
        ("nanscore", "unparseable verdict (no 'Score: N' line)"),
        ("range", "unparseable verdict (score 42 outside 1..10)"),
        ("garbage", "answer is not JSON"),
        ("nofield", "lacks choices[0].message.content"),
        ("echo", "HTTP 400 (not retried)"),
    ],
)
def test_http_judge_bad_answers_are_errors_not_scores_and_not_retried(judge_server, monkeypatch, mode, error):
    judge, waits = _http_judge(judge_server, monkeypatch)
    (outcome,) = judge.score([_item(mode)])
    assert outcome.value is None and outcome.error.startswith("http_judge: ") and error in outcome.error
    assert waits == [] and len(FakeJudge.requests) == 1


def test_http_judge_token_never_appears_in_errors_diagnostics_or_logs(judge_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    judge, _ = _http_judge(judge_server, monkeypatch)
    outcomes = judge.score([_item(m) for m in ("echo", "ok3", "500", "garbage", "nan")])
    assert "<redacted>" in outcomes[0].error  # the server echoed the header: the message hides it
    exposed = json.dumps([o.__dict__ for o in outcomes]) + json.dumps(judge.stats.as_dict()) + caplog.text
    assert TOKEN not in exposed and TOKEN[4:] not in exposed
    # a wrong token is answered 401 and not retried
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    from rewards.objectives.http_judge import HttpJudge

    other = HttpJudge(HttpJudgeConfig(url=judge_server, token_env=TOKEN_ENV, timeout_s=0.3))
    (outcome,) = other.score([_item("ok5")])
    assert outcome.value is None and "HTTP 401 (not retried)" in outcome.error


def test_http_judge_missing_token_variable_fails_at_start(monkeypatch):
    from rewards.objectives.http_judge import HttpJudge

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"environment variable {TOKEN_ENV} .* is not set"):
        HttpJudge(HttpJudgeConfig(url="http://127.0.0.1:9/v1/chat/completions", token_env=TOKEN_ENV))


def test_http_judge_connection_refused_is_retried_then_an_error(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge, waits = _http_judge(f"http://127.0.0.1:{port}/v1/chat/completions", monkeypatch, max_retries=1)
    (outcome,) = judge.score([_item("ok5")])
    assert outcome.value is None and "connection failed" in outcome.error and waits == [0.01]


def test_worker_excludes_trajectories_the_judge_cannot_score(judge_server, builtin_data, monkeypatch):
    """An unparseable verdict marks the trajectory failed (excluded from the update), never a 0."""
    from cosmo.algorithms.batch import prepare_rl_batch
    from cosmo.data import load_jsonl
    from rewards.pool import RewardWorker

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = load_config(None, [*BASE, f"reward.http_judge.url={judge_server}", f"reward.http_judge.token_env={TOKEN_ENV}",
                             "reward.weights.reasoning.http_judge=1", "reward.weights.reasoning.accuracy=0"])
    rows = load_jsonl(builtin_data["train"])
    i = next(k for k, r in enumerate(rows) if r.task == "reasoning")
    texts = ["<think>a</think><answer>[mode:ok10]</answer>", "<think>a</think><answer>[mode:garbage]</answer>"]
    worker = RewardWorker(str(builtin_data["train"]), cfg.reward)
    scored = worker.score([Trajectory(i, rows[i].id, [1], [2], [-0.1], t, "stop", 0) for t in texts])
    assert scored[0].error is None and scored[0].rewards["http_judge"] == 1.0
    assert scored[0].total == pytest.approx(1.0 + 0.5)  # judge 1 + 0.5 x format
    assert scored[1].total is None and scored[1].error.startswith("http_judge: answer is not JSON")
    items, stats = prepare_rl_batch(scored, 2, "std")
    assert [it.exclude for it in items] == [False, True] and stats["reward/failed"] == 1.0
    diag = worker.diagnostics()["http_judge"]
    assert diag["items"] == 2 and diag["failed"] == 1 and TOKEN not in json.dumps(diag)


# --- config checks of the reward section ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["reward.weights.reasoning.acuracy=1"], "reward.weights.reasoning.acuracy"),
        (["reward.weights.reasoning.accuracy=-1"], "reward.weights.reasoning.accuracy"),
        (["reward.weights.cooking.accuracy=1"], "reward.weights.cooking"),
        (["reward.weights.knowledge.judge=1"], "reward.weights.knowledge.judge"),  # judge not configured
        (["reward.normalize=zscore"], "reward.normalize"),
        (["reward.gate.objective=helpful"], "reward.gate.objective"),
        (["reward.gate.threshold=2"], "reward.gate.threshold"),
        (["reward.reward_model.path=p", "reward.reward_model.dtype=int8"], "reward.reward_model.dtype"),
        (["reward.judge.model=m", "reward.judge.max_score=1"], "reward.judge.max_score"),
        (["reward.judge.model=m", "reward.judge.rubric=/nonexistent/rubric.txt"], "reward.judge.rubric"),
        (["reward.http_judge.url=ftp://host/x"], "reward.http_judge.url"),
        (["reward.http_judge.url=http://h/v1", "reward.http_judge.max_retries=-1"], "reward.http_judge.max_retries"),
        (["reward.http_judge.url=http://h/v1", "reward.http_judge.timeout_s=20"], "reward.timeout_s"),  # 3 x 20 > 30
    ],
)
def test_bad_reward_settings_fail_at_start_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [*BASE, *overrides])
    assert f"key '{key}'" in str(err.value)


def test_a_token_put_where_its_variable_name_belongs_is_rejected_and_not_echoed():
    with pytest.raises(ConfigError) as err:
        load_config(None, [*BASE, "reward.http_judge.url=https://h/v1", "reward.http_judge.token_env=sk-live-abc123"])
    assert "reward.http_judge.token_env" in str(err.value) and "sk-live-abc123" not in str(err.value)


def test_model_objectives_are_off_by_default_and_configurable():
    cfg = load_config(None, BASE)
    assert (cfg.reward.reward_model, cfg.reward.judge, cfg.reward.http_judge, cfg.reward.gate) == (None,) * 4
    cfg = load_config(None, [*BASE, "reward.judge.model=/models/judge", "reward.weights.knowledge.judge=0.5",
                             "reward.gate.cap=-1", "reward.normalize=decoupled"])
    assert cfg.reward.judge.model == "/models/judge" and cfg.reward.judge.max_score == 10
    assert cfg.reward.weights["knowledge"] == {"accuracy": 1.0, "judge": 0.5}  # merged into the defaults
    assert cfg.reward.gate.cap == -1.0 and cfg.reward.gate.objective == "safety" and cfg.reward.normalize == "decoupled"


class ScriptedEngine:
    """Stands in for vLLM's LLM: answers each prompt with the next scripted verdict, records the calls."""

    def __init__(self, verdicts: list[str]) -> None:
        self.verdicts, self.calls = list(verdicts), []

    def generate(self, prompts, params, use_tqdm=False):
        from types import SimpleNamespace

        self.calls.append((list(prompts), params))
        return [SimpleNamespace(outputs=[SimpleNamespace(text=self.verdicts.pop(0))]) for _ in prompts]


def test_vllm_judge_greedy_verdicts_map_to_scores_and_long_responses_are_cut(classifier, tmp_path):
    from cosmo.config import JudgeConfig
    from rewards.objectives.judge import VLLMJudge

    _, _, tok = classifier
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Grade this reply to {prompt} ({task}; {should_refuse}; {reference}):\n{response}\nScore: N")
    engine = ScriptedEngine(["Fine.\nScore: 4", "I think it is good", "Score: 10/10"])
    judge = VLLMJudge(JudgeConfig(model="unused", rubric=str(rubric), max_tokens=8, max_model_len=400), engine=engine,
                      tokenizer=tok)
    long = "<think>" + "many words here " * 60 + "</think><answer>THE END</answer>"
    a, b, c = judge.score([Item(ROW, HELP, ROW.id), Item(ROW, REFUSE, ROW.id), Item(ROW, long, ROW.id)])
    assert a.value == pytest.approx((4 - 1) / 9) and a.info == {"score": 4.0, "truncated": False}
    assert b.value is None and b.error.startswith("judge: unparseable verdict (no 'Score: N' line)")
    assert c.value == 1.0 and c.info["truncated"] is True
    prompts, params = engine.calls[0]
    assert params.temperature == 0.0 and params.max_tokens == 8  # greedy, bounded
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 400 - 8 for p in prompts)
    assert "THE END</answer>" in prompts[2] and prompts[2].count("many words here") < 60  # kept the end
    assert judge.stats.as_dict()["failed"] == 1 and judge.stats.as_dict()["items"] == 3

# --- slow: the vLLM judge and a Ray pool with a reward model ---------------------------------------------------
@pytest.mark.slow
def test_vllm_judge_garbage_verdict_marks_trajectories_failed_not_zero(tiny_model, builtin_data, tmp_path):
    """The tiny random model cannot follow a rubric: every verdict is unparseable, so every trajectory the
    judge scores is excluded (error set, no total), and the rows the judge does not score are unaffected."""
    from cosmo.data import load_jsonl
    from rewards.pool import RewardWorker

    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Grade the reply to {prompt} ({task}, refuse: {should_refuse}, ref: {reference}):\n"
                      "{response}\nEnd with Score: N (1-10).")
    cfg = load_config(None, [*BASE, f"reward.judge.model={tiny_model}", f"reward.judge.rubric={rubric}",
                             "reward.judge.max_tokens=8", "reward.judge.max_model_len=256",
                             "reward.weights.reasoning.judge=1"])
    rows = load_jsonl(builtin_data["train"])
    reasoning = next(i for i, r in enumerate(rows) if r.task == "reasoning")
    safety = next(i for i, r in enumerate(rows) if r.task == "safety")
    worker = RewardWorker(str(builtin_data["train"]), cfg.reward)
    trajectories = [Trajectory(reasoning, rows[reasoning].id, [1], [2], [-0.1], HELP, "stop", 0),
                    Trajectory(reasoning, rows[reasoning].id, [1], [2], [-0.1], "x " * 400, "stop", 0),  # cut to fit
                    Trajectory(safety, rows[safety].id, [1], [2], [-0.1], REFUSE, "stop", 0)]
    scored = worker.score(trajectories)
    for s in scored[:2]:
        assert s.total is None and s.error.startswith("judge: unparseable verdict")
    assert scored[2].error is None and scored[2].total == pytest.approx(1.5)
    diag = worker.diagnostics()["judge"]
    assert diag["items"] == 2 and diag["failed"] == 2 and diag["load_s"] > 0


@pytest.mark.slow
def test_reward_pool_hosts_the_reward_model_in_each_worker(ray_cluster, classifier, builtin_data, tmp_path):
    from cosmo.data import load_jsonl
    from rewards.pool import RewardPool

    path, model, tok = classifier
    cfg = load_config(None, ["model.path=m", f"data.dir={tmp_path}", "reward.num_workers=2", "reward.timeout_s=60",
                             f"reward.reward_model.path={path}", "reward.weights.over_refusal.reward_model=1"])
    rows = load_jsonl(builtin_data["train"])
    benign = [i for i, r in enumerate(rows) if r.task == "over_refusal"][:2]
    trajectories = [Trajectory(i, rows[i].id, [1], [2], [-0.1], text, "stop", 0)
                    for i in benign for text in (HELP, REFUSE)]
    pool = RewardPool(cfg, str(builtin_data["train"]))
    try:
        scored = pool.score(trajectories)
        diagnostics = pool.diagnostics()
    finally:
        pool.shutdown()
    for t, s in zip(trajectories, scored, strict=True):
        (logit,) = _direct_logits(model, tok, rows[t.sample_index].prompt, t.text)
        assert s.error is None and s.rewards["reward_model"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-5)
    assert [d["reward_model"]["items"] for d in diagnostics] == [2, 2]  # each worker scored its share
    assert pool.events == []
