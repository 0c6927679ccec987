"""The documentation says what the code does: the configuration reference is the schemas',
the README stays an entry page, and every link between the pages leads somewhere."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from inoculate.config_reference import BEGIN, END, reference, updated
from inoculate.schema import CONFIG_SCHEMA, load_schema

PAGES = [REPO / "README.md", REPO / "config/README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_configuration_reference_is_generated_from_the_schemas():
    readme = (REPO / "config/README.md").read_text()
    generated = readme[readme.index(BEGIN) : readme.index(END) + len(END)]
    assert generated == reference(), "run: python -m inoculate.config_reference --write config/README.md"
    assert updated(readme) == readme
    for key in (
        "training.learning_rate",
        "judge.budget_usd",
        "arms.NAME.label",
        "evals.NAME.distribution",
        "study",
    ):
        assert f"| `{key}` |" in generated, key


def test_every_top_level_key_is_described():
    schema = load_schema(CONFIG_SCHEMA)
    bare = [k for k, v in schema["properties"].items() if "description" not in v and "$ref" not in v]
    assert not bare, f"keys of {CONFIG_SCHEMA.name} without a description: {bare}"


def test_readme_is_an_entry_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for must in (
        "## Quick start",
        "pip install torch==2.13.0 -e '.[test]' && pytest",
        "arxiv.org/abs/2510.04340",
    ):
        assert must in readme, must
    assert (REPO / ".ci/run").read_text().strip().endswith("pip install torch==2.13.0 -e '.[test]' && pytest")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.relative_to(REPO)}: broken link {target}"


def test_every_command_line_option_says_what_it_does():
    import argparse

    from inoculate.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [
        f"inoculate {name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not bare, bare
    assert "(--input INPUT | --calibrate FILE" in commands.choices["judge"].format_usage()
