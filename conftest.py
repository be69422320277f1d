"""Root conftest: runs before any test module imports torch.

The repo root holds the `triton/` model-repository folder; with the root on
sys.path torch would import it as OpenAI's Triton (docs/triton_runtime.md). Importing
`rvc` installs the guard that hides the bare folder.
"""

import rvc  # noqa: F401
