"""Load a diffusers pipeline of a registered family (:mod:`sdimage.backbones`) from a local folder or a Hugging
Face hub id.  The family is read from the folder's ``model_index.json``; its adapter class says which pipeline
class loads it, with which arguments, and which subfolders a complete folder holds."""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

from .errors import SdImageError

__all__ = ["load_pipeline", "parse_dtype", "DTYPES"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise SdImageError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _is_hub_id(model: str) -> bool:
    return not os.path.exists(model) and bool(_HUB_ID.match(model)) and not model.startswith((".", "~"))


def _validate_folder(path: Path) -> str:
    """Check a local pipeline folder; return its family."""
    from .backbones import adapter_class, arch_of_folder

    if not path.exists():
        raise SdImageError(f"model folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise SdImageError(f"model {str(path)!r} is a file, not a diffusers pipeline folder (with model_index.json)")
    if not (path / "model_index.json").is_file():
        raise SdImageError(
            f"model folder {str(path)!r} is not a diffusers pipeline: model_index.json missing "
            "(convert single-file checkpoints with diffusers' convert scripts or the pipeline's from_single_file)"
        )
    arch = arch_of_folder(path)
    family = adapter_class(arch)
    for sub in family.subfolders:
        if not (path / sub).is_dir():
            raise SdImageError(f"model folder {str(path)!r} is not a complete {family.label} pipeline: "
                               f"no {sub}/ subfolder")
    return arch


def _from_pretrained(name: str, progress: bool = False, arch: str | None = None, **kwargs):
    """``from_pretrained`` of the family's pipeline class (``arch`` None: ``DiffusionPipeline``, for hub ids)."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog
    from diffusers import DiffusionPipeline

    from .backbones import adapter_class

    family = None if arch is None else adapter_class(arch)
    d_on, t_on = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    if not progress:
        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():  # diffusers >= 0.36 renamed torch_dtype to dtype (FutureWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if family is None:
                return DiffusionPipeline.from_pretrained(name, **kwargs)
            return family.pipeline_class().from_pretrained(name, **family.load_kwargs(), **kwargs)
    finally:
        if d_on:
            dlog.enable_progress_bar()
        if t_on:
            tlog.enable_progress_bar()


def load_pipeline(
    model: str,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    cpu_offload: bool = False,
    progress: bool = False,
):
    """The family's text-to-image pipeline (the first of its adapter's ``pipeline_classes``; also for 9-channel
    inpainting UNets: the components are the same).

    ``model`` is a local diffusers folder (must hold ``model_index.json``) or a hub id such as
    ``owner/name``; ``progress`` shows the loading bars; hub ids are looked up in the local cache first
    (``local_files_only=True``) and only then on the network.  ``float64`` is meant for CPU reconstruction checks.
    """
    torch_dtype = parse_dtype(dtype)
    if cpu_offload and not str(device).startswith("cuda"):
        raise SdImageError("--cpu-offload needs a CUDA device (--device cuda)")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SdImageError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    kwargs = dict(torch_dtype=torch_dtype)
    if _is_hub_id(model):
        try:
            pipe = _from_pretrained(model, progress, local_files_only=True, **kwargs)
        except Exception as cached_err:  # not in the cache: try the network once
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            try:
                if offline:
                    raise cached_err
                pipe = _from_pretrained(model, progress, **kwargs)
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise SdImageError(
                    f"cannot load hub model {model!r} (not in the local cache and the hub is unreachable: {first}); "
                    f"download it once where there is network (huggingface-cli download {model} --local-dir DIR) "
                    "and pass --model DIR, a local folder with model_index.json"
                ) from None
    else:
        path = Path(model).expanduser()
        arch = _validate_folder(path)
        try:
            pipe = _from_pretrained(str(path), progress, arch, local_files_only=True, **kwargs)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SdImageError(f"cannot load diffusers pipeline from {str(path)!r}: {first}") from None
    from .backbones import detect_arch

    detect_arch(pipe)  # a hub pipeline of another family: one clear line
    pipe.set_progress_bar_config(disable=True)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe
