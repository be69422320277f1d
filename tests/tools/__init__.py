"""Tests for the code-analysis CLIs in tools/ and their library tools/codetools/."""
