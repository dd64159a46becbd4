"""Model objectives, one module each, imported only by the reward workers that host them:
`reward_model` (HF sequence classifier), `judge` (vLLM judge and the verdict parser), `http_judge`
(a remote chat-completions judge); `base` holds what they share. The rule objectives (format,
accuracy, refusal, constraints) are plain functions in `cosmo.rules`, shared with data generation
and evaluation.
"""
