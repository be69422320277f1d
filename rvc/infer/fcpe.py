"""FCPE pitch estimation with the weights torchfcpe bundles, run by our own code.

Matches ``torchfcpe`` 0.0.4's ``spawn_bundled_infer_model().infer(wav, 16000, 'local_argmax', 0.006)``,
which RVC calls with the filtered, padded 16 kHz signal: log-mel front end (128 Slaney mels up to
8 kHz, n_fft = window = 1024, hop 160, STFT with ``center=False`` after 432 samples of reflect padding
on each side, so frame i is centred on sample 160 i + 80, half a hop after RMVPE's) -> the conv-only
network of ``fcpe_net.py`` -> salience over 360 bins evenly spaced in cents from 32.70 to 1975.5 Hz ->
``local_argmax`` decoding (salience-weighted mean of the 9 bins around the argmax, indices clamped at
the edges) -> f0 = 10 * 2^(cents / 1200), 0 Hz where the peak salience is <= 0.006. Always float32;
no median filter, no clamp, unvoiced frames stay 0 (filling them is the caller's business).

torchfcpe itself imports torchaudio, which has no build for our torch; its wheel is installed without
dependencies (``pip install --no-deps``) only for the weight file, which is found on disk, never imported.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rvc.errors import AssetError
from rvc.infer.fcpe_net import FCPEConfig, FCPENet
from rvc.infer.signal_ops import triangular_filters
from rvc.infer.state_dict import check_state_dict, read_tensor_file
from rvc.infer.weight_norm import fold_weight_norm, normalize_weight_norm_names

__all__ = [
    "FCPE",
    "TORCHFCPE_REQUIREMENT",
    "WEIGHTS_NAME",
    "FCPEMel",
    "bundled_weights",
    "decode_local_argmax",
    "locate_weights",
    "missing_weights_message",
    "slaney_mel_filterbank",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 1024
MEL_FMIN = 0.0
MEL_FMAX = 8000.0
LOG_CLAMP = 1e-5
MAGNITUDE_EPS = 1e-9  # added under the square root of the STFT power, as torchfcpe does
THRESHOLD = 0.006  # RVC's threshold for FCPE (torchfcpe's own default is 0.05)
PAD = (N_FFT - HOP_LENGTH) // 2  # 432
_WINDOW = 4  # bins on each side of the argmax

WEIGHTS_NAME = "fcpe_c_v001.pt"
TORCHFCPE_REQUIREMENT = "torchfcpe>=0.0.4,<0.1"
# The front end is fixed here; a checkpoint trained on another one cannot be read with it.
_EXPECTED_MEL = {"sr": SAMPLE_RATE, "n_fft": N_FFT, "win_size": N_FFT, "hop_size": HOP_LENGTH,
                 "fmin": MEL_FMIN, "fmax": MEL_FMAX}  # fmt: skip
# Keys the conv-only network never reads: the attention pre-norms of each layer and a training-loss constant.
_UNUSED_KEY = re.compile(r"^(gaussian_blurred_cent_mask|net\.encoder_layers\.\d+\.norm\.(weight|bias))$")
_WEIGHT_NORMED = ["output_proj"]


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the Slaney mel scale, area-normalised: (n_mels, n_fft // 2 + 1) float32.

    The construction (float64, cast row by row into float32) of ``librosa.filters.mel`` with its
    defaults, which torchfcpe uses (or its vendored copy when librosa is absent).
    """
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        return min_log_mel + float(np.log(hz / min_log_hz)) / logstep if hz >= min_log_hz else hz / f_sp

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_points = f_sp * mels
    log_part = mels >= min_log_mel
    hz_points[log_part] = min_log_hz * np.exp(logstep * (mels[log_part] - min_log_mel))
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    return triangular_filters(hz_points, fft_freqs)


class FCPEMel(torch.nn.Module):
    """wav ``(B, N)`` float32 at 16 kHz -> natural-log mel magnitude ``(B, 1 + N // 160, n_mels)`` float32."""

    mel_basis: torch.Tensor
    window: torch.Tensor

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        basis = slaney_mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, MEL_FMIN, MEL_FMAX)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        samples = wav.shape[-1]
        # Short inputs are zero-padded up to one window instead (reflection needs more samples than it pads).
        pad_right = max(PAD, N_FFT - samples - PAD)
        mode = "reflect" if pad_right < samples else "constant"
        padded = F.pad(wav.unsqueeze(1), (PAD, pad_right), mode=mode).squeeze(1)
        spectrum = torch.stft(
            padded, N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window=self.window,
            center=False, normalized=False, onesided=True, return_complex=True,
        )  # fmt: skip
        magnitude = torch.sqrt(spectrum.real.pow(2) + spectrum.imag.pow(2) + MAGNITUDE_EPS)
        mel = torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=LOG_CLAMP)).transpose(1, 2)
        # center=False gives N // 160 frames; RVC's f0 grid has one more, a copy of the last
        frames = samples // HOP_LENGTH + 1
        if frames > mel.shape[1]:
            mel = torch.cat((mel, mel[:, -1:]), dim=1)
        return mel[:, :frames]


def decode_local_argmax(salience: torch.Tensor, cent_table: torch.Tensor, threshold: float) -> torch.Tensor:
    """salience ``(B, T, bins)`` -> f0 ``(B, T)`` float32 Hz, 0 where the frame's peak is <= ``threshold``.

    Weighted mean of the bin cents over the 9 bins around the argmax; near the ends of the range the
    indices are clamped (the edge bin counts several times), unlike RMVPE's zero padding.
    """
    bins = salience.shape[-1]
    peak, argmax = torch.max(salience, dim=-1, keepdim=True)
    columns = (torch.arange(-_WINDOW, _WINDOW + 1, device=salience.device) + argmax).clamp(0, bins - 1)
    local = torch.gather(salience, -1, columns)
    cents = torch.sum(cent_table[columns] * local, dim=-1) / torch.sum(local, dim=-1)
    f0 = 10.0 * 2.0 ** (cents / 1200.0)
    return torch.where(peak[..., 0] > threshold, f0, torch.zeros_like(f0))


def bundled_weights() -> Path | None:
    """The weight file inside the installed torchfcpe wheel, found without importing torchfcpe."""
    spec = importlib.util.find_spec("torchfcpe")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "assets" / WEIGHTS_NAME
        if candidate.is_file():
            return candidate
    return None


def locate_weights(assets_file: Path | None, bundled: Path | None) -> Path | None:
    """``assets_file`` (an operator's explicit copy) when it exists, else the wheel's file, else None."""
    for candidate in (assets_file, bundled):
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    return None


def missing_weights_message(assets_file: Path | None) -> str:
    """What to do when neither place has the weights; names both."""
    place = f"put {WEIGHTS_NAME} at {assets_file}" if assets_file is not None else f"put {WEIGHTS_NAME} in ASSETS_DIR/fcpe/"
    return (
        f"f0_method 'fcpe' is unavailable: its weights were found neither in the torchfcpe package "
        f"(install it with: pip install --no-deps '{TORCHFCPE_REQUIREMENT}') nor in the assets folder "
        f"({place}); or choose another f0_method"
    )


def _config_from_checkpoint(config_dict: Any, source: str) -> FCPEConfig:
    try:
        mel, model = config_dict["mel"], config_dict["model"]
        wrong = {key: mel.get(key) for key, value in _EXPECTED_MEL.items() if mel.get(key) != value}
        if wrong:
            raise AssetError(f"{source} was trained on another mel front end: {wrong}, expected {_EXPECTED_MEL}")
        if model.get("type") != "CFNaiveMelPE":
            raise AssetError(f"{source} holds a {model.get('type')!r} model; only CFNaiveMelPE is supported")
        return FCPEConfig(
            n_mels=int(mel["num_mels"]), out_dims=int(model["out_dims"]), hidden_dims=int(model["hidden_dims"]),
            n_layers=int(model["n_layers"]), f0_min=float(model["f0_min"]), f0_max=float(model["f0_max"]),
            conv_only=bool(model.get("conv_only", False)),
            use_harmonic_emb=bool(model.get("use_harmonic_emb", False)),
        )  # fmt: skip
    except (KeyError, TypeError, AttributeError) as exc:
        raise AssetError(f"{source} has no usable config_dict (missing {exc})") from exc
    except ValueError as exc:
        raise AssetError(f"{source} describes an unsupported model: {exc}") from exc


def load_fcpe_net(path: str | Path, *, device: str | torch.device = "cpu") -> FCPENet:
    """Build FCPENet from a torchfcpe checkpoint (``{'model', 'config_dict', ...}``) with named key checks."""
    path = Path(path)
    source = f"FCPE checkpoint {path}"
    checkpoint = read_tensor_file(path, source=source)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise AssetError(f"{source} is not a torchfcpe checkpoint (no 'model' state dict)")
    state = normalize_weight_norm_names(
        {key: value for key, value in checkpoint["model"].items() if not _UNUSED_KEY.match(key)}
    )
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise AssetError(f"{source} has a 'model' entry that is not a state dict of tensors")
    model = FCPENet(_config_from_checkpoint(checkpoint.get("config_dict"), source))
    expected: dict[str, tuple[int, ...]] = {}
    for key, value in model.state_dict().items():
        if key.removesuffix(".weight") in _WEIGHT_NORMED and key.endswith(".weight"):
            expected[key + "_g"] = (value.shape[0], 1)
            expected[key + "_v"] = tuple(value.shape)
        else:
            expected[key] = tuple(value.shape)
    check_state_dict(state, expected, source=source)
    model.load_state_dict(fold_weight_norm(state, _WEIGHT_NORMED), strict=True)
    return model.eval().to(device=device, dtype=torch.float32)


class FCPE:
    """Pitch estimator, float32 only. Shareable by every voice of a process (no per-call state)."""

    def __init__(self, model: FCPENet, *, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.mel = FCPEMel(model.config.n_mels).to(self.device)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | torch.device = "cpu") -> FCPE:
        model = load_fcpe_net(path, device=device)
        logger.info("loaded FCPE %s (%s, device %s, dtype float32)", path, model.config, device)
        return cls(model, device=device)

    @torch.inference_mode()
    def salience(self, wav16k: np.ndarray) -> torch.Tensor:
        """wav ``(N,)`` at 16 kHz (any float dtype; cast to float32) -> ``(1, 1 + N // 160, bins)`` on the device."""
        audio = torch.from_numpy(np.ascontiguousarray(wav16k, dtype=np.float32)).to(self.device)
        return self.model(self.mel(audio.unsqueeze(0)))

    @torch.inference_mode()
    def infer_from_audio(self, wav16k: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
        """wav ``(N,)`` at 16 kHz -> f0 ``(1 + N // 160,)`` float32 Hz, 0 where unvoiced."""
        f0 = decode_local_argmax(self.salience(wav16k), self.model.cent_table, threshold)
        return f0[0].cpu().numpy()
