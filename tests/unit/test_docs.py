"""Documentation that is generated from, or copied out of, the code stays identical to it."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.core import states

ROOT = Path(__file__).resolve().parents[2]


def test_readme_shows_the_real_ns_instantiate_definition() -> None:
    source = (ROOT / "sagas" / "sagas" / "ns.py").read_text()
    definition = re.search(r"^instantiate_ns: Saga.*?^\)$", source, re.S | re.M)
    assert definition is not None
    assert definition.group(0) in (ROOT / "README.md").read_text(), (
        "README.md's copy of ns.instantiate is stale: paste the definition from sagas/ns.py"
    )


def test_state_diagram_is_generated_from_the_transition_table() -> None:
    doc = (ROOT / "docs" / "states.md").read_text()
    assert states.mermaid() in doc, "regenerate docs/states.md: python -m coordinator.diagram"


def test_every_link_in_the_docs_stays_in_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages += sorted((ROOT / "examples").glob("*/*.md"))
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>", text):
            link = target[0] or target[1]
            assert not re.match(r"^[a-z]+:", link), f"{page.name} links outside: {link}"
            path = (page.parent / link.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {link}"
            assert path.exists(), f"{page.name} links to a missing file: {link}"
