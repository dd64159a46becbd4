"""Importers for public benchmarks (docs/benchmarks.md): each turns a benchmark, as its authors distribute
it, into a JSONL file in COSMO's row format. Benchmarks are for evaluation only; nothing here ships
their content."""

from cosmo.benchmarks.base import ImportResult
from cosmo.benchmarks.figstep import import_figstep
from cosmo.benchmarks.generic import import_generic
from cosmo.benchmarks.ifeval import import_ifeval
from cosmo.benchmarks.mmsafety import import_mm_safetybench
from cosmo.benchmarks.siuo import import_siuo
from cosmo.benchmarks.xstest import import_xstest

IMPORTERS = {
    "xstest": import_xstest,
    "figstep": import_figstep,
    "mm-safetybench": import_mm_safetybench,
    "siuo": import_siuo,
    "ifeval": import_ifeval,
    "generic": import_generic,
}

__all__ = ["IMPORTERS", "ImportResult", "import_figstep", "import_generic", "import_ifeval", "import_mm_safetybench",
           "import_siuo", "import_xstest"]
