"""Root conftest: runs before any test module imports torch.

The repo root holds the `triton/` model-repository folder; with the root on
sys.path torch would import it as OpenAI's Triton (infra.md §0.5). Importing
`rvc` installs the guard that hides the bare folder.
"""

import rvc  # noqa: F401
