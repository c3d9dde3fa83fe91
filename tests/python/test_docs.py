"""docs/backprop.md runs: every `>>>` snippet is executed with doctest and its output checked."""

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^\s*```.*$", re.MULTILINE)


class MarkdownParser(doctest.DocTestParser):
    """Doctest for Markdown: a code fence line ends the expected output like a blank line."""

    def parse(self, string, name="<string>"):
        return super().parse(FENCE.sub("", string), name)


@pytest.mark.parametrize("page", ["backprop.md"])
def test_docs_page_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")  # the page's last section draws plots
    monkeypatch.chdir(tmp_path)  # the plots it saves land here
    result = doctest.testfile(str(DOCS / page), module_relative=False, parser=MarkdownParser(),
                              optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False,
                              report=True, encoding="utf-8")
    assert result.attempted > 20, f"{page}: only {result.attempted} examples found"
    assert result.failed == 0, f"{page}: {result.failed} of {result.attempted} examples failed"
    for png in ("curves.png", "weights.png", "network.png", "gradients.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_every_python_block_is_a_doctest():
    """A ```python block without >>> would be shown but never checked."""
    text = (DOCS / "backprop.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    for block in blocks:
        assert block.lstrip().startswith(">>>"), block[:80]
