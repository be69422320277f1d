"""Which model files the service needs, which Hugging Face repository holds each, and where it goes.

* Spark-TTS-0.5B, ``SparkAudio/Spark-TTS-0.5B``: the official folder layout
  (``config.yaml``, ``BiCodec/``, ``LLM/``, ``wav2vec2-large-xlsr-53/``) into
  ``SPARK_MODEL_DIR``. The repository's own file list decides (so a file added
  upstream is not missed); the built-in list below is used when the hub's
  listing API cannot be read (some mirrors serve files only).
* ``hubert_base.pt`` and ``rmvpe.pt`` from ``lj1995/VoiceConversionWebUI``
  into ``ASSETS_DIR/hubert`` and ``ASSETS_DIR/rmvpe``; the WebUI main's HuBERT folder
  ``hubert_base/`` (``config.json``, ``preprocessor_config.json``, ``pytorch_model.bin``) from the
  same repository into ``ASSETS_DIR/hubert_base`` (group ``hubert_base``). The workers load the
  folder when it is complete, else ``hubert_base.pt``.
* RVC voices named on the command line as ``REPO[@REVISION]:FILE.pth[,FILE.index]``
  into ``WEIGHTS_DIR``; the index is saved as ``<voice>.index`` beside
  ``<voice>.pth``, the name the service looks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rvc.errors import InvalidInput
from rvc.settings import Settings

__all__ = [
    "ASSET_GROUPS",
    "HUBERT_FOLDER_FILES",
    "RVC_BASE_REPO",
    "SPARK_OPTIONAL_FILES",
    "SPARK_REPO",
    "SPARK_REQUIRED_FILES",
    "RemoteFile",
    "VoiceSource",
    "base_model_files",
    "parse_voice_spec",
    "spark_files",
    "voice_files",
]

SPARK_REPO = "SparkAudio/Spark-TTS-0.5B"
RVC_BASE_REPO = "lj1995/VoiceConversionWebUI"
ASSET_GROUPS = ("spark", "hubert", "hubert_base", "rmvpe", "voices")
# config.json last: its presence is what marks the folder complete (Settings.content_encoder_path)
HUBERT_FOLDER_FILES = ("pytorch_model.bin", "preprocessor_config.json", "config.json")

# The layout SparkTTS.from_pretrained reads (docs/spark_tts_reference.md).
SPARK_REQUIRED_FILES = (
    "config.yaml",
    "BiCodec/config.yaml",
    "BiCodec/model.safetensors",
    "LLM/config.json",
    "LLM/model.safetensors",
    "LLM/tokenizer.json",
    "LLM/tokenizer_config.json",
    "LLM/vocab.json",
    "LLM/merges.txt",
    "LLM/added_tokens.json",
    "LLM/special_tokens_map.json",
    "wav2vec2-large-xlsr-53/config.json",
    "wav2vec2-large-xlsr-53/preprocessor_config.json",
    "wav2vec2-large-xlsr-53/pytorch_model.bin",
)
# Fetched when present upstream; their absence does not break loading.
SPARK_OPTIONAL_FILES = ("README.md", "LLM/generation_config.json", "wav2vec2-large-xlsr-53/README.md")
_SPARK_FOLDERS = ("BiCodec/", "LLM/", "wav2vec2-large-xlsr-53/")
_SPARK_TOP_FILES = ("config.yaml", "README.md")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model repository and the local path it is saved to."""

    repo: str
    path: str  # POSIX path inside the repository
    destination: Path
    revision: str = "main"
    required: bool = True  # an optional file that the hub does not have is skipped, not an error

    def __post_init__(self) -> None:
        if self.repo.count("/") != 1 or not all(self.repo.split("/")):
            raise ValueError(f"repo must look like 'owner/name', got {self.repo!r}")
        parts = PurePosixPath(self.path).parts
        if not parts or self.path.startswith("/") or ".." in parts:
            raise ValueError(f"path must be relative inside the repository, got {self.path!r}")

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.path}"


@dataclass(frozen=True)
class VoiceSource:
    """An RVC voice on the hub: its ``.pth`` and, optionally, its ``.index``."""

    repo: str
    pth_path: str
    index_path: str | None = None
    revision: str = "main"

    @property
    def name(self) -> str:
        return PurePosixPath(self.pth_path).stem


def parse_voice_spec(spec: str) -> VoiceSource:
    """Parse ``REPO[@REVISION]:FILE.pth[,FILE.index]``; raise InvalidInput naming what is wrong."""
    repo_part, sep, files_part = spec.partition(":")
    if not sep or not files_part:
        raise InvalidInput(f"voice {spec!r}: expected REPO:FILE.pth[,FILE.index]", field="voice")
    repo, _, revision = repo_part.partition("@")
    pth_path, _, index_path = files_part.partition(",")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InvalidInput(f"voice {spec!r}: the repository must look like owner/name", field="voice")
    if not pth_path.endswith(".pth"):
        raise InvalidInput(f"voice {spec!r}: the voice file must end in .pth", field="voice")
    if index_path and not index_path.endswith(".index"):
        raise InvalidInput(f"voice {spec!r}: the index file must end in .index", field="voice")
    return VoiceSource(repo=repo, pth_path=pth_path, index_path=index_path or None, revision=revision or "main")


def _in_spark_layout(path: str) -> bool:
    return path in _SPARK_TOP_FILES or path.startswith(_SPARK_FOLDERS)


def spark_files(model_dir: Path, listing: Iterable[str] | None, *, revision: str = "main") -> list[RemoteFile]:
    """Every file of the official Spark-TTS-0.5B layout, into ``model_dir``.

    ``listing`` is the repository's file list (None when it could not be read):
    every listed file inside the layout is fetched, and each required file is
    fetched even if unlisted, so a missing one fails loudly instead of leaving
    an unloadable folder. ``config.yaml`` comes last, so that a folder holding
    it is complete.
    """
    if listing is None:
        wanted = {path: True for path in SPARK_REQUIRED_FILES}
        wanted.update({path: False for path in SPARK_OPTIONAL_FILES})
    else:
        wanted = {path: True for path in sorted(listing) if _in_spark_layout(path)}
        wanted.update({path: True for path in SPARK_REQUIRED_FILES})
    # config.yaml last: its presence is what marks the folder complete (rvc.assets.inspect_assets)
    order = sorted(wanted, key=lambda path: path == "config.yaml")
    return [RemoteFile(SPARK_REPO, path, model_dir / path, revision=revision, required=wanted[path]) for path in order]


def base_model_files(settings: Settings, groups: Iterable[str]) -> list[RemoteFile]:
    """``hubert_base.pt``, the ``hubert_base/`` folder, ``rmvpe.pt`` for the groups asked for."""
    chosen = set(groups)
    files = []
    if "hubert" in chosen:
        files.append(RemoteFile(RVC_BASE_REPO, "hubert_base.pt", settings.hubert_path))
    if "hubert_base" in chosen:
        files += [RemoteFile(RVC_BASE_REPO, f"hubert_base/{name}", settings.hubert_folder / name)
                  for name in HUBERT_FOLDER_FILES]  # fmt: skip
    if "rmvpe" in chosen:
        files.append(RemoteFile(RVC_BASE_REPO, "rmvpe.pt", settings.rmvpe_path))
    return files


def voice_files(weights_dir: Path, voices: Iterable[VoiceSource]) -> list[RemoteFile]:
    """Each voice's ``<name>.pth`` and ``<name>.index`` in ``weights_dir``."""
    files = []
    for voice in voices:
        files.append(RemoteFile(voice.repo, voice.pth_path, weights_dir / f"{voice.name}.pth", voice.revision))
        if voice.index_path:
            files.append(
                RemoteFile(voice.repo, voice.index_path, weights_dir / f"{voice.name}.index", voice.revision)
            )
    return files
