"""Parity of ``load_voice_checkpoint`` + ``Synthesizer`` with the official goldens (rvc_synth_v2_tiny).

Tolerance 1e-4 everywhere (fixture README); observed: ≤ 7e-7 on audio, 0 on the latents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rvc.infer.synthesizer import SynthesisOutput, VoiceCheckpoint

TOLERANCE = 1e-4
LATENTS = ("audio", "x_mask", "z", "z_p", "m_p", "logs_p")


def _golden(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _assert_matches(
    output: SynthesisOutput, golden: dict[str, np.ndarray], keys: tuple[str, ...] = LATENTS
) -> None:
    for key in keys:
        ours = getattr(output, key).numpy()
        assert ours.shape == golden[key].shape, key
        diff = float(np.abs(ours - golden[key]).max())
        assert diff <= TOLERANCE, f"{key}: max |diff| {diff:.3g}"


def _call(voice: VoiceCheckpoint, inputs: dict[str, torch.Tensor], **kwargs: object) -> SynthesisOutput:
    return voice.model.synthesize(
        inputs["phone"], inputs["phone_lengths"], inputs["pitch"], inputs["nsff0"], inputs["sid"], **kwargs
    )


def test_fixture_checkpoint_metadata(fixture_voice: VoiceCheckpoint) -> None:
    config = fixture_voice.config
    assert (fixture_voice.version, fixture_voice.if_f0, fixture_voice.sample_rate) == ("v2", True, 40000)
    assert config.to_checkpoint_list() == [
        1025, 32, 16, 16, 32, 2, 2, 3, 0, "1", [3, 7, 11], [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        [10, 10, 2, 2], 32, [16, 16, 4, 4], 2, 16, 40000,
    ]  # fmt: skip
    assert fixture_voice.info == {"info": "1epoch", "sr": "40k", "f0": 1, "version": "v2"}
    model = fixture_voice.model
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(torch.Size(shape).numel() for shape in model.checkpoint_layout().values()) == 131_450


def test_deterministic_call_matches_golden(
    fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path
) -> None:
    output = _call(fixture_voice, synth_inputs, deterministic=True)
    golden = _golden(synth_dir / "expected_deterministic.npz")
    _assert_matches(output, golden)
    g = fixture_voice.model.emb_g(synth_inputs["sid"]).unsqueeze(-1)
    np.testing.assert_allclose(g.detach().numpy(), golden["g"], atol=TOLERANCE, rtol=0)


def test_nsf_source_matches_golden(fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path) -> None:
    from rvc.infer.nsf import NoiseSource

    golden = _golden(synth_dir / "expected_deterministic.npz")
    source = fixture_voice.model.dec.m_source
    with torch.inference_mode():
        sine_waves = source.sine_waves(synth_inputs["nsff0"], 400, NoiseSource(deterministic=True))
        har_source = source(synth_inputs["nsff0"], 400, NoiseSource(deterministic=True))
    assert float(np.abs(sine_waves.numpy() - golden["sine_waves"]).max()) <= TOLERANCE
    assert float(np.abs(har_source.transpose(1, 2).numpy() - golden["har_source"]).max()) <= TOLERANCE
    # The very first sample is sin(2π·f0[0]/sr): the phase is an inclusive running sum.
    expected_first = 0.1 * np.sin(2 * np.pi * float(synth_inputs["nsff0"][0, 0]) / 40000)
    assert sine_waves[0, 0, 0].item() == pytest.approx(expected_first, abs=1e-7)


def _frames(tensor: torch.Tensor) -> np.ndarray:
    """A decoder activation as the reference's (B, C, T), whether the layer ran planar or not."""
    return (tensor.squeeze(2) if tensor.dim() == 4 else tensor).numpy().copy()


@pytest.fixture
def decoder_taps(fixture_voice: VoiceCheckpoint) -> Iterator[dict[str, np.ndarray]]:
    taps: dict[str, np.ndarray] = {}
    dec = fixture_voice.model.dec
    handles = [
        dec.conv_pre.register_forward_hook(lambda m, i, o: taps.__setitem__("dec_conv_pre", _frames(o))),
        dec.cond.register_forward_hook(lambda m, i, o: taps.__setitem__("dec_cond", _frames(o))),
        dec.conv_post.register_forward_pre_hook(
            lambda m, i: taps.__setitem__("dec_conv_post_input", _frames(i[0]))
        ),
    ]
    for index, (up, noise_conv) in enumerate(zip(dec.ups, dec.noise_convs, strict=True)):
        handles.append(
            up.register_forward_hook(lambda m, i, o, n=index: taps.__setitem__(f"dec_ups_{n}", _frames(o)))
        )
        handles.append(
            noise_conv.register_forward_hook(
                lambda m, i, o, n=index: taps.__setitem__(f"dec_noise_convs_{n}", _frames(o))
            )
        )
    yield taps
    for handle in handles:
        handle.remove()


def test_decoder_intermediates_match_golden(
    fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path, decoder_taps: dict[str, np.ndarray]
) -> None:
    _call(fixture_voice, synth_inputs, deterministic=True)
    golden = _golden(synth_dir / "expected_deterministic_intermediates.npz")
    assert set(golden) == set(decoder_taps)
    for key, expected in golden.items():
        assert decoder_taps[key].shape == expected.shape, key
        diff = float(np.abs(decoder_taps[key] - expected).max())
        assert diff <= TOLERANCE, f"{key}: max |diff| {diff:.3g}"


def test_masked_tail_still_decodes_like_the_reference(
    fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path
) -> None:
    inputs = dict(synth_inputs, phone_lengths=torch.tensor([40]))
    golden = _golden(synth_dir / "expected_deterministic_len40.npz")
    output = _call(fixture_voice, inputs, deterministic=True)
    _assert_matches(output, golden)
    assert np.abs(golden["audio"][..., 16000:]).max() > 0.01  # not zeroed past the mask


@pytest.mark.parametrize(
    ("golden_name", "kwargs", "samples"),
    [
        ("expected_deterministic_stream.npz", {"skip_head": 30, "return_length": 16}, 6400),
        (
            "expected_deterministic_stream_rl2.npz",
            {"skip_head": 30, "return_length": 16, "return_length2": 19},
            7600,
        ),
    ],
)
def test_streaming_arguments_match_golden(
    fixture_voice: VoiceCheckpoint,
    synth_inputs,
    synth_dir: Path,
    golden_name: str,
    kwargs: dict,
    samples: int,
) -> None:
    output = _call(fixture_voice, synth_inputs, deterministic=True, **kwargs)
    assert output.audio.shape == (1, 1, samples)
    assert output.m_p.shape == (1, 16, 44)  # cropped from flow_head = 30 - 24 = 6
    _assert_matches(output, _golden(synth_dir / golden_name))


def test_global_seed_reproduces_the_reference_draws(
    fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path
) -> None:
    golden = _golden(synth_dir / "expected_seeded_1234.npz")
    torch.manual_seed(1234)
    _assert_matches(_call(fixture_voice, synth_inputs), golden, ("audio", "z", "z_p"))


def test_generator_seed_reproduces_the_reference_draws_without_global_state(
    fixture_voice: VoiceCheckpoint, synth_inputs, synth_dir: Path
) -> None:
    golden = _golden(synth_dir / "expected_seeded_1234.npz")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    output = _call(fixture_voice, synth_inputs, generator=torch.Generator().manual_seed(1234))
    _assert_matches(output, golden, ("audio", "z", "z_p"))
    assert torch.equal(torch.get_rng_state(), before)


def test_sampling_is_random_unless_seeded_or_deterministic(
    fixture_voice: VoiceCheckpoint, synth_inputs
) -> None:
    def audio(**kwargs: object) -> torch.Tensor:
        return _call(fixture_voice, synth_inputs, **kwargs).audio

    assert torch.equal(
        audio(generator=torch.Generator().manual_seed(7)), audio(generator=torch.Generator().manual_seed(7))
    )
    assert not torch.allclose(
        audio(generator=torch.Generator().manual_seed(7)), audio(generator=torch.Generator().manual_seed(8))
    )
    assert torch.equal(audio(deterministic=True), audio(deterministic=True))
    deterministic, sampled = audio(deterministic=True), audio(generator=torch.Generator().manual_seed(7))
    assert float((deterministic - sampled).abs().max()) > 0.05
    assert torch.equal(audio(noise_scale=0.0, deterministic=True), deterministic)


def test_infer_returns_the_audio_of_synthesize(fixture_voice: VoiceCheckpoint, synth_inputs) -> None:
    args = [synth_inputs[k] for k in ("phone", "phone_lengths", "pitch", "nsff0", "sid")]
    audio = fixture_voice.model.infer(*args, deterministic=True)
    assert audio.shape == (1, 1, 20000) and audio.dtype == torch.float32
    assert torch.equal(audio, fixture_voice.model.synthesize(*args, deterministic=True).audio)
