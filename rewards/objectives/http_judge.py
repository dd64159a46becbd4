"""`http_judge`: a remote judge behind an OpenAI-compatible chat-completions endpoint.

Range [0, 1], same rubric and "Score: N" mapping as `judge` (a "cannot tell" 5 is a reward of 0.444 there
too: see `judge` for why it is not an error). One POST per response:
`{"model", "messages": [{"role": "user", "content": <rubric>}], "temperature": 0, "max_tokens"}` with
`Authorization: Bearer <token>` (the token is read once from the environment variable NAMED by
`reward.http_judge.token_env`) and `Idempotency-Key: <sample id>:http_judge:<response hash>` (a retried
request carries the same key; the hash tells the responses of one prompt apart).
Each attempt has `timeout_s`; timeouts, connection errors, 429 and 5xx are retried up to `max_retries`
times after `backoff_s x 2^k`. Anything else is an error for that trajectory without retry: another 4xx,
a body that is not JSON or lacks `choices[0].message.content` as text, a verdict without a valid score
(`parse_judge_score`: finite, in range, unambiguous). Errors and diagnostics never contain the token.
Diagnostics: per worker `ObjectiveStats` (retries included); per item `info`: raw score, attempts, status.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from cosmo.config import HttpJudgeConfig
from rewards.objectives.base import Item, ObjectiveStats, Outcome, response_view
from rewards.objectives.judge import (
    JudgeParseError,
    excerpt,
    load_rubric,
    parse_judge_score,
    render_rubric,
    to_unit,
)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class HttpJudgeError(RuntimeError):
    """A request that failed for good (after retries, or at once when retrying cannot help)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class HttpJudge:
    name = "http_judge"
    low, high = 0.0, 1.0

    def __init__(self, cfg: HttpJudgeConfig, sleep=time.sleep) -> None:
        import httpx  # noqa: PLC0415 - only workers that host the objective import it

        self.cfg = cfg
        self.stats = ObjectiveStats(self.name)
        self.template = load_rubric(cfg.rubric)
        self._sleep = sleep
        self._token: str | None = None
        if cfg.token_env is not None:
            self._token = os.environ.get(cfg.token_env) or None
            if self._token is None:
                raise RuntimeError(f"http_judge: environment variable {cfg.token_env} (reward.http_judge.token_env) "
                                   "is not set or empty on this reward worker's node")
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        self._client = httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), headers=headers, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="http_judge")
        self.stats.loaded_s = 0.0

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<redacted>") if self._token else text

    def idempotency_key(self, item: Item) -> str:
        return f"{item.sample_id}:{self.name}:{item.response_hash}"

    def body(self, item: Item) -> dict:
        content = render_rubric(self.template, item, response_view(item.text, self.cfg.response_part))
        return {"model": self.cfg.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0, "max_tokens": self.cfg.max_tokens}

    def _post(self, item: Item) -> tuple[dict, int, int]:
        """The decoded JSON answer, the number of attempts and the final status; raises HttpJudgeError."""
        import httpx  # noqa: PLC0415 - only workers that host the objective

        body, key = self.body(item), self.idempotency_key(item)
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self._sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(self.cfg.url, json=body, headers={"Idempotency-Key": key})
            except httpx.TimeoutException as exc:
                last = f"timed out after {self.cfg.timeout_s:g} s ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if not 200 <= resp.status_code < 300:
                raise HttpJudgeError(f"HTTP {resp.status_code} (not retried): {excerpt(resp.text)}", attempt + 1)
            try:
                return json.loads(resp.text), attempt + 1, resp.status_code
            except ValueError:
                raise HttpJudgeError(f"answer is not JSON: {excerpt(resp.text)}", attempt + 1) from None
        raise HttpJudgeError(f"{last}; gave up after {self.cfg.max_retries + 1} attempts", self.cfg.max_retries + 1)

    @staticmethod
    def verdict_text(answer: object, attempts: int = 1) -> str:
        """`choices[0].message.content` of a chat-completions answer; anything else raises HttpJudgeError."""
        try:
            content = answer["choices"][0]["message"]["content"]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            raise HttpJudgeError(f"answer lacks choices[0].message.content: {excerpt(json.dumps(answer))}",
                                 attempts) from None
        if not isinstance(content, str):
            raise HttpJudgeError(f"choices[0].message.content is {type(content).__name__}, not text: "
                                 f"{excerpt(json.dumps(content))}", attempts)
        return content

    def _one(self, item: Item) -> Outcome:
        attempts, verdict = 0, ""
        try:
            answer, attempts, status = self._post(item)
            verdict = self.verdict_text(answer, attempts)
            raw = parse_judge_score(verdict, self.cfg.min_score, self.cfg.max_score)
        except JudgeParseError as exc:
            return Outcome(error=self._redact(f"http_judge: unparseable verdict ({exc}): {excerpt(verdict)}"),
                           info={"attempts": attempts, "retries": attempts - 1})
        except HttpJudgeError as exc:
            return Outcome(error=self._redact(f"http_judge: {exc}"),
                           info={"attempts": exc.attempts, "retries": exc.attempts - 1})
        except Exception as exc:  # noqa: BLE001 - one bad request must not sink the batch
            return Outcome(error=self._redact(f"http_judge: {type(exc).__name__}: {str(exc)[:200]}"))
        value = to_unit(raw, self.cfg.min_score, self.cfg.max_score)
        return Outcome(value=value, info={"score": raw, "attempts": attempts, "retries": attempts - 1,
                                          "status": status})

    def score(self, items: list[Item]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes = list(self._pool.map(self._one, items))
        self.stats.record(outcomes, started)
        return outcomes

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()
