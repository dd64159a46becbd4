"""`python -m cosmo.config > docs/config.md`"""

from cosmo.config.reference import reference_markdown

print(reference_markdown(), end="")
