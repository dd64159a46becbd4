"""The rules data, rewards and evaluation share: the response template, the refusal rule, answer
matching and instruction constraints, and the registry of objective names.

One definition of each, below the rooms that use it: `cosmo.data` writes and validates rows with
them, `rewards` scores with them, `cosmo.evaluation.heldout` judges with them. Import the submodule you need
(`cosmo.rules.answers` loads math-verify; the others are light).
"""
