"""Model-repository preparation: template filling, validation, and the configs' agreement with the
wire contract (no server needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rvc.errors import ConfigError
from rvc.grpc import contract
from rvc.grpc.model_repository import (
    MARKER_FILE,
    TEMPLATE_DIR,
    fill_template,
    parse_substitutions,
    prepare_model_repository,
    unfilled_placeholders,
)
from sparktts import serving
from tests.conftest import REPO_ROOT


@pytest.fixture()
def fake_model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Spark-TTS-0.5B"
    for name in ("BiCodec", "LLM", "wav2vec2-large-xlsr-53"):
        (folder / name).mkdir(parents=True)
    return folder


def config_tensors(text: str, section: str) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    """{name: (data_type, dims, optional)} of the ``input`` or ``output`` block of a config.pbtxt."""
    block = text[text.index(f"\n{section} [") :]
    block = block[: block.index("\n]")]
    found = {}
    for entry in re.findall(r"\{(.*?)\n  \}", block, flags=re.S):
        name = re.search(r'name: "([^"]+)"', entry).group(1)
        data_type = re.search(r"data_type: (\w+)", entry).group(1)
        dims = tuple(int(d) for d in re.search(r"dims: \[([^\]]*)\]", entry).group(1).replace(" ", "").split(","))
        found[name] = (data_type, dims, "optional: true" in entry)
    return found


def test_parse_substitutions_follows_the_official_escaping() -> None:
    assert parse_substitutions(r"a:1,b:x\,y,c:d:e,d:f\:g") == {"a": "1", "b": "x,y", "c": "d:e", "d": "f:g"}
    with pytest.raises(ValueError, match="not key:value"):
        parse_substitutions("novalue")


def test_fill_template_substitutes_defaults_and_rejects_unknown_keys() -> None:
    text = "a: ${a}\ndelay: ${max_queue_delay_microseconds}\nkeep: ${other}\nflag: ${flag}\n"
    filled = fill_template(text, {"a": 3, "flag": True})
    assert filled == "a: 3\ndelay: 0\nkeep: ${other}\nflag: true\n"
    assert unfilled_placeholders(filled) == ["other"]
    with pytest.raises(ValueError, match="typo"):
        fill_template(text, {"typo": 1})


def test_fill_template_cli_matches_the_official_usage(tmp_path: Path) -> None:
    template = tmp_path / "config.pbtxt"
    template.write_text('name: "m"\nmax_batch_size: ${triton_max_batch_size}\nkey: "${model_dir}"\n')
    script = REPO_ROOT / "triton" / "scripts" / "fill_template.py"
    subprocess.run(
        [sys.executable, str(script), "-i", str(template), r"triton_max_batch_size:16,model_dir:/a\:b"],
        check=True, cwd=tmp_path,
    )
    assert template.read_text() == 'name: "m"\nmax_batch_size: 16\nkey: "/a:b"\n'


@pytest.mark.parametrize("mode", ["offline", "streaming"])
def test_prepared_repository_is_complete(tmp_path: Path, fake_model_dir: Path, mode: str) -> None:
    output = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir, mode=mode, bls_instances=2)
    models = [contract.AUDIO_TOKENIZER, contract.SPARK_TTS, contract.SPARK_TTS_DECOUPLED, contract.VOCODER]
    assert sorted(p.name for p in output.iterdir()) == sorted([*models, MARKER_FILE])
    for model in models:
        text = (output / model / "config.pbtxt").read_text()
        assert unfilled_placeholders(text) == [], model
        assert (output / model / "1" / "model.py").is_file()
    spark = (output / contract.SPARK_TTS / "config.pbtxt").read_text()
    assert f"decoupled: {'true' if mode == 'streaming' else 'false'}" in spark
    assert "count: 2" in spark
    assert f'"{fake_model_dir.resolve() / "LLM"}"' in spark and 'name: "spark_tts"' in spark
    streaming = (output / contract.SPARK_TTS_DECOUPLED / "config.pbtxt").read_text()
    assert 'name: "spark_tts_decoupled"' in streaming and "decoupled: true" in streaming
    # identical contracts, different default schedules
    assert config_tensors(streaming, "input") == config_tensors(spark, "input")
    assert parameter(streaming, "chunk_first_tokens") == "15" and parameter(streaming, "chunk_steady_tokens") == "25"
    assert parameter(spark, "chunk_first_tokens") == "50" and parameter(spark, "chunk_steady_tokens") == "1500"
    assert parameter(spark, "chunk_scale") == "8.0" and parameter(spark, "chunk_overlap_tokens") == "5"


def parameter(config: str, key: str) -> str:
    match = re.search(rf'key: "{key}", value: {{ string_value: "([^"]*)" }}', config)
    assert match, key
    return match.group(1)


def test_the_streaming_model_can_be_left_out_and_its_schedule_set(tmp_path: Path, fake_model_dir: Path) -> None:
    alone = prepare_model_repository(tmp_path / "alone", model_dir=fake_model_dir, streaming_model=False)
    assert not (alone / contract.SPARK_TTS_DECOUPLED).exists()
    tuned = prepare_model_repository(tmp_path / "tuned", model_dir=fake_model_dir, stream_first_tokens=10,
                                     stream_steady_tokens=40, stream_overlap_tokens=2, stream_batching=False)
    streaming = (tuned / contract.SPARK_TTS_DECOUPLED / "config.pbtxt").read_text()
    assert [parameter(streaming, f"chunk_{k}_tokens") for k in ("first", "steady", "overlap")] == ["10", "40", "2"]
    assert parameter(streaming, "stream_batching") == "false"
    default = (alone / contract.SPARK_TTS / "config.pbtxt").read_text()
    assert parameter(default, "stream_batching") == "true"  # continuous batching of streams by default


def test_configs_declare_the_contracts_tensors(tmp_path: Path, fake_model_dir: Path) -> None:
    output = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir)
    for model, (inputs, outputs) in contract.MODEL_TENSORS.items():
        text = (output / model / "config.pbtxt").read_text()
        for section, specs in (("input", inputs), ("output", outputs)):
            declared = config_tensors(text, section)
            expected = {spec.name: (spec.config_type, spec.dims, spec.optional) for spec in specs}
            assert declared == expected, (model, section)


def test_official_inputs_stay_declared_and_only_the_text_is_always_required() -> None:
    """The clip became optional to Triton (stored tokens or voice attributes may replace it); the model
    itself still requires it when no other source is sent (tests/triton/test_serving.py)."""
    declared = {spec.name: spec for spec in contract.SPARK_TTS_INPUTS}
    assert {contract.REFERENCE_WAV, contract.REFERENCE_WAV_LEN, contract.REFERENCE_TEXT} <= set(declared)
    assert {name for name, spec in declared.items() if not spec.optional} == {contract.TARGET_TEXT}
    assert contract.INVALID_INPUT_PREFIX == serving.INVALID_INPUT_PREFIX


def test_tensorrt_llm_variant_adds_the_engine_model(tmp_path: Path, fake_model_dir: Path) -> None:
    engine = tmp_path / "engine"
    engine.mkdir()
    output = prepare_model_repository(
        tmp_path / "repo", model_dir=fake_model_dir, llm_backend="tensorrtllm", trtllm_engine_dir=engine,
        mode="streaming",
    )
    text = (output / contract.TENSORRT_LLM / "config.pbtxt").read_text()
    assert unfilled_placeholders(text) == []
    assert 'backend: "tensorrtllm"' in text and f'"{engine.resolve()}"' in text and "decoupled: true" in text
    assert 'value: { string_value: "tensorrtllm" }' in (output / contract.SPARK_TTS / "config.pbtxt").read_text()
    with pytest.raises(ValueError, match="trtllm_engine_dir"):
        prepare_model_repository(tmp_path / "repo2", model_dir=fake_model_dir, llm_backend="tensorrtllm")


def test_preparing_again_replaces_only_a_prepared_folder(tmp_path: Path, fake_model_dir: Path) -> None:
    output = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir)
    (output / "stale").mkdir()
    prepare_model_repository(output, model_dir=fake_model_dir, mode="streaming")
    assert not (output / "stale").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing"):
        prepare_model_repository(foreign, model_dir=fake_model_dir)
    assert (foreign / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "batch"}, "mode must be one of"),
        ({"device": "tpu"}, "device must be one of"),
        ({"bls_instances": 0}, "bls_instances must be >= 1"),
        ({"audio_chunk_duration": 0.2}, "audio_chunk_duration"),
        ({"audio_chunk_overlap_duration": 2.0}, "audio_chunk_overlap_duration"),
        ({"top_p": 1.5}, "generation defaults"),
        ({"llm_fast_matmul": "yes"}, "llm_fast_matmul must be one of"),
        ({"llm_backend": "tensorrtllm", "trtllm_engine_dir": Path("/engines"), "llm_restrict_vocab": True},
         "llm_restrict_vocab needs llm_backend 'python' or 'onnxruntime'"),
        ({"stream_first_tokens": 5, "stream_overlap_tokens": 5}, "stream_overlap_tokens < stream_first_tokens"),
        ({"stream_steady_tokens": 10}, "stream_first_tokens <= stream_steady_tokens"),
        ({"stream_chunk_scale": 0.5}, "stream_chunk_scale"),
    ],
)
def test_bad_options_are_refused_by_name(tmp_path: Path, fake_model_dir: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir, **options)


@pytest.mark.parametrize("choice", ["auto", "off"])
def test_llm_fast_matmul_reaches_the_spark_tts_parameters(tmp_path: Path, fake_model_dir: Path, choice: str) -> None:
    repo = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir, llm_fast_matmul=choice)
    text = (repo / contract.SPARK_TTS / "config.pbtxt").read_text()
    assert f'{{ key: "llm_fast_matmul", value: {{ string_value: "{choice}" }} }}' in text


@pytest.mark.parametrize("restrict", [False, True])
def test_llm_restrict_vocab_reaches_both_spark_tts_models(tmp_path: Path, fake_model_dir: Path, restrict: bool) -> None:
    repo = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir, llm_restrict_vocab=restrict)
    for model in (contract.SPARK_TTS, contract.SPARK_TTS_DECOUPLED):
        text = (repo / model / "config.pbtxt").read_text()
        assert f'{{ key: "llm_restrict_vocab", value: {{ string_value: "{str(restrict).lower()}" }} }}' in text


def test_missing_model_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks"):
        prepare_model_repository(tmp_path / "repo", model_dir=tmp_path / "nothing")


def test_templates_live_in_the_repo() -> None:
    assert TEMPLATE_DIR == REPO_ROOT / "triton" / "model_repo"
    assert not (TEMPLATE_DIR.parent / "__init__.py").exists()  # triton/ is no importable package


def test_run_sh_prepares_the_repository_and_skips_tensorrt_llm_without_the_toolchain(
    tmp_path: Path, fake_model_dir: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin", "SPARK_MODEL_DIR": str(fake_model_dir), "TRITON_MODEL_REPO": str(tmp_path / "repo"),
        "DEVICE": "cpu", "PYTHON": sys.executable, "HOME": str(tmp_path),
        "LLM_BACKEND": "python",  # unset or auto it would be onnxruntime here, exporting this fake LLM
    }
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "triton" / "run.sh"), "1", "2", "streaming"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "trtllm-build not found: skipping" in done.stdout
    spark = (tmp_path / "repo" / contract.SPARK_TTS / "config.pbtxt").read_text()
    assert "decoupled: true" in spark and 'string_value: "python"' in spark
    bad = subprocess.run(["bash", str(REPO_ROOT / "triton" / "run.sh"), "2", "2", "batch"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "offline or streaming" in bad.stderr


def _trtllm_toolchain(tmp_path: Path, python_name: str) -> Path:
    """Recording stand-ins for trtllm-build and the TensorRT-LLM image's python (``python_name``), which
    says it imports tensorrt_llm (``-c``) and records any other call: the real ones need NVIDIA's image and a GPU."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "trtllm-build").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD/build"\n'
                                        'while [ $# -gt 0 ]; do [ "$1" = --output_dir ] && mkdir -p "$2" && '
                                        'echo "{}" > "$2/config.json"; shift; done\n')
    (tools / python_name).write_text('#!/bin/sh\n[ "$1" = -c ] && exit 0\nprintf "%s\\n" "$@" > "$RECORD/convert"\n')
    for tool in tools.iterdir():
        tool.chmod(0o755)
    return tools


def test_run_sh_builds_the_engine_with_float32_logits(tmp_path: Path, fake_model_dir: Path) -> None:
    """Stage 1 with the TensorRT-LLM toolchain stood in by recording scripts: the engine is built with
    float32 logits, the checkpoint converted by $TRTLLM_PYTHON, and stage 2 serves the engine with a KV
    pool and attention window of the engine's own prompt length plus the budget, per batch row."""
    tools = _trtllm_toolchain(tmp_path, "trtllm-python")
    env = {
        "PATH": f"{tools}:/usr/bin:/bin", "SPARK_MODEL_DIR": str(fake_model_dir), "RECORD": str(tmp_path),
        "TRITON_MODEL_REPO": str(tmp_path / "repo"), "TRT_ENGINE_DIR": str(tmp_path / "engines"), "DEVICE": "cuda",
        "TRTLLM_PYTHON": str(tools / "trtllm-python"), "TRT_DTYPE": "float16", "PYTHON": sys.executable,
        "HOME": str(tmp_path), "TRTLLM_MAX_INPUT_LEN": "1000", "MAX_NEW_TOKENS": "500", "TRITON_MAX_BATCH_SIZE": "4",
    }
    done = subprocess.run(["bash", str(REPO_ROOT / "triton" / "run.sh"), "1", "2", "offline"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    build = (tmp_path / "build").read_text().split()
    assert build[build.index("--logits_dtype") + 1] == "float32"
    assert build[build.index("--gemm_plugin") + 1] == "float16"
    assert (build[build.index("--max_input_len") + 1], build[build.index("--max_seq_len") + 1]) == ("1000", "1500")
    assert "batch 4 x (1000 prompt + 500 budget) = 6000 KV tokens" in done.stdout
    convert = (tmp_path / "convert").read_text().split()
    assert convert[0].endswith("convert_checkpoint.py") and convert[convert.index("--dtype") + 1] == "float16"
    engine = (tmp_path / "repo" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert '"max_tokens_in_paged_kv_cache", value: { string_value: "6000" }' in engine
    assert '"max_attention_window_size", value: { string_value: "1500" }' in engine


def test_run_sh_finds_the_python_that_imports_tensorrt_llm_and_spreads_over_gpus(
    tmp_path: Path, fake_model_dir: Path
) -> None:
    """Without $TRTLLM_PYTHON stage 1 takes the first python3 that imports tensorrt_llm (the TensorRT-LLM
    image's own 3.10, not the service's venv); stage 2 spreads instances over TRITON_GPU_COUNT cards."""
    tools = _trtllm_toolchain(tmp_path, "python3")
    env = {
        "PATH": f"{tools}:/usr/bin:/bin", "SPARK_MODEL_DIR": str(fake_model_dir), "RECORD": str(tmp_path),
        "TRITON_MODEL_REPO": str(tmp_path / "repo"), "TRT_ENGINE_DIR": str(tmp_path / "engines"), "DEVICE": "cuda",
        "TRT_DTYPE": "float16", "PYTHON": sys.executable, "HOME": str(tmp_path), "TRITON_GPU_COUNT": "2",
    }
    done = subprocess.run(["bash", str(REPO_ROOT / "triton" / "run.sh"), "1", "2", "offline"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "; python python3; into" in done.stdout  # /usr/bin/python3 here has no tensorrt_llm: the next one
    assert (tmp_path / "convert").read_text().split()[0].endswith("convert_checkpoint.py")
    (group,) = _model_config(tmp_path / "repo" / contract.SPARK_TTS / "config.pbtxt").instance_group
    assert list(group.gpus) == [0, 1]


def _model_config(path: Path):  # type: ignore[no-untyped-def]
    """The config.pbtxt parsed by Triton's own ModelConfig schema (a bad block fails to parse)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize(("device", "gpu_count"), [("cpu", 0), ("cuda", 1), ("cuda", 4)])
def test_instances_spread_over_gpus_only_when_there_are_several(
    tmp_path: Path, fake_model_dir: Path, device: str, gpu_count: int
) -> None:
    from rvc.grpc.model_repository import read_placements

    output = prepare_model_repository(
        tmp_path / "repo", model_dir=fake_model_dir, device=device, gpu_count=gpu_count,  # type: ignore[arg-type]
        bls_instances=2, tokenizer_instances=1, vocoder_instances=3, dtype="float16" if device == "cuda" else "float32",
    )
    counts = {contract.AUDIO_TOKENIZER: 1, contract.VOCODER: 3, contract.SPARK_TTS: 2, contract.SPARK_TTS_DECOUPLED: 2}
    spread = gpu_count > 1
    for model, count in counts.items():
        (group,) = _model_config(output / model / "config.pbtxt").instance_group
        assert group.count == count, model
    # KIND_GPU over every card, or KIND_CPU with the model's own device (the official layout)
    from tritonclient.grpc import model_config_pb2

    kinds = model_config_pb2.ModelInstanceGroup.Kind
    for model in counts:
        (group,) = _model_config(output / model / "config.pbtxt").instance_group
        assert kinds.Name(group.kind) == ("KIND_GPU" if spread else "KIND_CPU"), model
        assert list(group.gpus) == (list(range(gpu_count)) if spread else []), model
    placements = {part.part: (part.device, part.dtype) for part in read_placements(output)}
    where = "cuda:0,1,2,3" if spread else device
    assert placements[f"triton.{contract.AUDIO_TOKENIZER}"] == (where, "float32")  # the codec stays float32
    assert placements[f"triton.{contract.VOCODER}"] == (where, "float32")
    assert placements[f"triton.{contract.SPARK_TTS}"] == (where, "float16" if device == "cuda" else "float32")
    assert read_placements(tmp_path / "nothing-here") == ()


def test_prepare_script_counts_the_gpus_torch_sees_unless_told(tmp_path: Path, fake_model_dir: Path) -> None:
    """--gpu-count auto (the default, as run.sh and the fleet's Triton call it) counts with torch as the
    service does: on this machine torch sees no GPU, so a cuda repository keeps KIND_CPU."""
    script = [sys.executable, str(REPO_ROOT / "triton" / "scripts" / "prepare_repository.py"),
              "--model-dir", str(fake_model_dir), "--device", "cuda", "--dtype", "float16"]
    done = subprocess.run([*script, "--output", str(tmp_path / "auto")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (group,) = _model_config(tmp_path / "auto" / contract.VOCODER / "config.pbtxt").instance_group
    assert list(group.gpus) == []
    done = subprocess.run([*script, "--output", str(tmp_path / "three"), "--gpu-count", "3"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (group,) = _model_config(tmp_path / "three" / contract.VOCODER / "config.pbtxt").instance_group
    assert list(group.gpus) == [0, 1, 2]
    bad = subprocess.run([*script, "--output", str(tmp_path / "bad"), "--gpu-count", "two"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "--gpu-count must be a number or auto" in bad.stderr


def test_an_auto_llm_dtype_is_written_for_the_stub_and_the_codec_stays_float32(
    tmp_path: Path, fake_model_dir: Path
) -> None:
    from rvc.grpc.model_repository import read_placements

    output = prepare_model_repository(tmp_path / "repo", model_dir=fake_model_dir, device="cuda", dtype="auto")
    placements = {part.part: part.dtype for part in read_placements(output)}
    assert placements[f"triton.{contract.SPARK_TTS}"] == "auto"  # each instance resolves it for its card
    assert placements[f"triton.{contract.AUDIO_TOKENIZER}"] == placements[f"triton.{contract.VOCODER}"] == "float32"


def test_an_instance_placed_on_a_gpu_pins_its_device() -> None:
    parameters = {"device": "cuda", "dtype": "float32"}
    assert serving.instance_parameters(parameters, {"model_instance_kind": "GPU", "model_instance_device_id": "2"})[
        "device"] == "cuda:2"
    assert serving.instance_parameters(parameters, {"model_instance_kind": "CPU", "model_instance_device_id": "0"}) \
        == parameters
    assert serving.instance_parameters({"device": "cpu"}, {"model_instance_kind": "GPU",
                                                          "model_instance_device_id": "1"}) == {"device": "cpu"}
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        serving.torch_device({"device": "gpu1"})
