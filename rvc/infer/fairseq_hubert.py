"""Read fairseq HuBERT/ContentVec checkpoints (RVC's ``hubert_base.pt``) without fairseq.

The file is a fairseq training checkpoint: ``torch.save`` of a dict with ``model`` (the state
dict), ``cfg`` (plain nested dicts; older files carry an argparse ``args`` instead) and
training state that pickles fairseq classes (``task_state`` holds a
``fairseq.data.dictionary.Dictionary``). ``weights_only=True`` refuses those classes, so the
file is read with a restricted unpickler: the few real callables tensors need are allowed,
every other global becomes an inert stand-in object that only stores what the pickle gives it
(nothing of it runs), and globals from modules that only malicious files reference (os,
subprocess, builtins, ...) are refused outright.

The weights then go through an explicit fairseq -> ``transformers.HubertModel`` key table with
shape checks (docs/rvc_reference.md, "HuBERT"; verified numerically by fixtures/hubert_tiny).
"""

from __future__ import annotations

import ast
import logging
import pickle
import re
import types
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import HubertConfig

from rvc.errors import AssetError

__all__ = [
    "FAIRSEQ_DROPPED_KEYS",
    "FAIRSEQ_KEY_TABLE",
    "fairseq_to_transformers_key",
    "hubert_config_from_fairseq",
    "read_fairseq_checkpoint",
]

logger = logging.getLogger(__name__)

# fairseq key (regex, full match) -> transformers HubertModel key (+ final_proj on our subclass).
FAIRSEQ_KEY_TABLE: tuple[tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", r"feature_extractor.conv_layers.\1.conv.weight"),
    (
        r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
        r"feature_extractor.conv_layers.0.layer_norm.\1",
    ),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", r"encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.weight_v", r"encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"encoder.layers.\1.attention.\2_proj.\3",
    ),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"mask_emb", r"masked_spec_embed"),
    (r"final_proj\.(weight|bias)", r"final_proj.\1"),
)
# Training-only fairseq tensors with no inference counterpart.
FAIRSEQ_DROPPED_KEYS: tuple[str, ...] = (r"label_embs_concat",)

_COMPILED_TABLE = tuple((re.compile(pattern), target) for pattern, target in FAIRSEQ_KEY_TABLE)
_COMPILED_DROPPED = tuple(re.compile(pattern) for pattern in FAIRSEQ_DROPPED_KEYS)

# fairseq HubertConfig defaults for the fields the architecture needs (ContentVec/HuBERT base).
_FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "conv_pos_batch_norm": False,
    "final_dim": 0,
}

# --------------------------------------------------------------------------------------------
# restricted unpickling


class _StandIn:
    """Inert replacement for a class the checkpoint pickles but inference does not need."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in {type(self).__module__}.{type(self).__qualname__}>"


_STAND_INS: dict[tuple[str, str], type] = {}


def _stand_in(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STAND_INS:
        _STAND_INS[key] = type(name, (_StandIn,), {"__module__": module, "__qualname__": name})
    return _STAND_INS[key]


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
}
_REFUSED_MODULES = frozenset(
    {"os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "importlib", "runpy", "shutil",
     "socket", "pty", "code", "codeop", "ctypes", "pickle", "marshal", "webbrowser", "multiprocessing"}
)  # fmt: skip


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.split(".")[0] in _REFUSED_MODULES:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a model checkpoint")
        logger.debug("checkpoint global %s.%s replaced by an inert stand-in", module, name)
        return _stand_in(module, name)


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


_RESTRICTED_PICKLE = types.ModuleType("rvc_restricted_pickle")
_RESTRICTED_PICKLE.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]  # torch.load(pickle_module=) reads these two names
_RESTRICTED_PICKLE.load = _restricted_load  # type: ignore[attr-defined]  # torch.load(pickle_module=) reads these two names


def _plain(value: Any) -> Any:
    """Turn stand-ins of config containers (argparse Namespace, omegaconf nodes) into plain data."""
    if isinstance(value, _StandIn):
        state = value.state
        if isinstance(state, Mapping) and "_content" in state:  # omegaconf container
            return _plain(state["_content"])
        if isinstance(state, Mapping) and "_val" in state:  # omegaconf value node
            return _plain(state["_val"])
        if isinstance(state, Mapping):  # argparse.Namespace and similar attribute bags
            return {str(key): _plain(item) for key, item in state.items()}
        return None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def read_fairseq_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``path`` -> (fairseq state dict, model config fields as plain data)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"HuBERT checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(
            path, map_location="cpu", pickle_module=_RESTRICTED_PICKLE, weights_only=False
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AssetError(f"HuBERT checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise AssetError(f"HuBERT checkpoint {path} is not a fairseq checkpoint (no 'model' state dict)")
    state = checkpoint["model"]
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise AssetError(f"HuBERT checkpoint {path}: 'model' entries are not tensors: {not_tensors[:8]}")
    cfg = _plain(checkpoint.get("cfg"))
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(model_cfg, dict):
        model_cfg = _plain(checkpoint.get("args"))
    if not isinstance(model_cfg, dict):
        logger.warning("%s has neither cfg.model nor args; assuming fairseq's HuBERT-base defaults", path)
        model_cfg = {}
    return dict(state), model_cfg


# --------------------------------------------------------------------------------------------
# architecture and key mapping


def _conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """Evaluate fairseq's ``conv_feature_layers`` string ("[(512,10,5)] + [(512,3,2)] * 4 ...") safely."""

    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [evaluate(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = evaluate(node.left), evaluate(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)}")

    try:
        layers = evaluate(ast.parse(spec, mode="eval"))
        return [(int(dim), int(kernel), int(stride)) for dim, kernel, stride in layers]
    except (SyntaxError, ValueError, TypeError) as exc:
        raise AssetError(f"cannot parse conv_feature_layers {spec!r}: {exc}") from exc


def hubert_config_from_fairseq(model_cfg: Mapping[str, Any], *, source: str = "checkpoint") -> HubertConfig:
    """The ``transformers.HubertConfig`` equivalent to a fairseq ``hubert`` model config (inference)."""
    cfg = {**_FAIRSEQ_DEFAULTS, **{k: v for k, v in model_cfg.items() if v is not None}}
    unsupported = []
    if cfg["extractor_mode"] != "default":
        unsupported.append(f"extractor_mode={cfg['extractor_mode']!r} (only 'default')")
    if cfg["layer_norm_first"]:
        unsupported.append("layer_norm_first=True (pre-LN)")
    if cfg["conv_pos_batch_norm"]:
        unsupported.append("conv_pos_batch_norm=True")
    if cfg["activation_fn"] != "gelu":
        unsupported.append(f"activation_fn={cfg['activation_fn']!r} (only 'gelu')")
    if unsupported:
        raise AssetError(f"{source}: unsupported HuBERT variant: {', '.join(unsupported)}")
    conv_layers = _conv_layers(str(cfg["conv_feature_layers"]))
    embed_dim = int(cfg["encoder_embed_dim"])
    final_dim = int(cfg["final_dim"]) if int(cfg["final_dim"]) > 0 else embed_dim
    return HubertConfig(
        hidden_size=embed_dim,
        num_hidden_layers=int(cfg["encoder_layers"]),
        num_attention_heads=int(cfg["encoder_attention_heads"]),
        intermediate_size=int(cfg["encoder_ffn_embed_dim"]),
        hidden_act="gelu",
        feat_extract_activation="gelu",
        feat_extract_norm="group",
        conv_dim=tuple(layer[0] for layer in conv_layers),
        conv_kernel=tuple(layer[1] for layer in conv_layers),
        conv_stride=tuple(layer[2] for layer in conv_layers),
        conv_bias=bool(cfg["conv_bias"]),
        num_conv_pos_embeddings=int(cfg["conv_pos"]),
        num_conv_pos_embedding_groups=int(cfg["conv_pos_groups"]),
        do_stable_layer_norm=False,
        feat_proj_layer_norm=True,
        layer_norm_eps=1e-5,
        classifier_proj_size=final_dim,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.0,
    )


def fairseq_to_transformers_key(key: str) -> str | None:
    """The transformers name of a fairseq HuBERT key; None for training-only keys.

    Raises KeyError for a key the table does not know (the caller reports it as unexpected).
    """
    if any(pattern.fullmatch(key) for pattern in _COMPILED_DROPPED):
        return None
    for pattern, target in _COMPILED_TABLE:
        match = pattern.fullmatch(key)
        if match:
            return match.expand(target)
    raise KeyError(key)


def map_fairseq_state(state: Mapping[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Rename a fairseq state dict to transformers names; AssetError lists keys the table lacks."""
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        try:
            target = fairseq_to_transformers_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if target is not None:
            mapped[target] = tensor
    if unknown:
        raise AssetError(
            f"{source} has keys with no transformers counterpart: {', '.join(sorted(unknown)[:12])}"
        )
    return mapped
