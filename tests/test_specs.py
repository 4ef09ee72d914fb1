"""Which specs a job implements, and the branch/component names made from them."""

from __future__ import annotations

from pact_bot.confined import Refused
from pact_bot.specs import (
    branch_name,
    changed_sections,
    component_name,
    refused_paths_text,
    spec_changes,
    spec_refs,
    spec_slug,
    specs_from_args,
    summary_path,
)

PATCH = (
    "@@ -1,8 +1,9 @@\n # Auth service\n \n ## Login\n-Users log in with a password.\n"
    "+Users log in with a password or a passkey.\n \n ## Tokens\n"
    "+Tokens expire after one hour.\n Tokens are opaque.\n \n ## Errors\n"
)
NEW = (
    "# Auth service\n\n## Login\nUsers log in with a password or a passkey.\n\n"
    "## Tokens\nTokens expire after one hour.\nTokens are opaque.\n\n## Errors\n401 on bad login.\n"
)


def test_issue_body_references_are_found_in_order_without_repeats() -> None:
    body = (
        "Please implement docs/auth-service-spec.md and `./docs/api/billing-spec.md`.\n"
        "See also README.md, docs/notes.md and docs/auth-service-spec.md again."
    )
    assert spec_refs(body) == ["docs/auth-service-spec.md", "docs/api/billing-spec.md"]
    assert spec_refs(None) == []
    assert spec_refs("specs/a.md", glob="specs/*.md") == ["specs/a.md"]


def test_command_arguments_split_into_specs_and_words() -> None:
    specs, rest = specs_from_args(["docs/a-spec.md", "and", "./docs/b-spec.md", "fast"])
    assert specs == ["docs/a-spec.md", "docs/b-spec.md"]
    assert rest == ["and", "fast"]


def test_pr_files_keep_added_and_changed_specs_only() -> None:
    files = [
        {"filename": "docs/auth-spec.md", "status": "modified", "patch": PATCH},
        {"filename": "docs/new-spec.md", "status": "added", "patch": "@@ -0,0 +1 @@\n+# New\n"},
        {"filename": "docs/old-spec.md", "status": "removed"},
        {"filename": "src/app.py", "status": "added", "patch": "@@ -0,0 +1 @@\n+x = 1\n"},
    ]
    changes = spec_changes(files)
    assert [c.path for c in changes] == ["docs/auth-spec.md", "docs/new-spec.md"]
    assert changes[0].sections == ("Login", "Tokens")
    assert changes[1].sections == ("New",)


def test_changed_sections_with_and_without_file_contents() -> None:
    assert changed_sections(PATCH, NEW) == ["Login", "Tokens"]
    assert changed_sections(PATCH) == ["Login", "Tokens"]
    assert changed_sections(None) == []
    assert changed_sections("not a patch") == []


def test_hunk_header_context_names_a_section_outside_the_hunk() -> None:
    patch = "@@ -10,1 +10,2 @@ ## Rate limits\n 100 per minute.\n+Burst of 20.\n"
    assert changed_sections(patch) == ["Rate limits"]


def test_names() -> None:
    assert component_name("docs/auth-service-spec.md") == "auth-service"
    assert component_name("docs/Order_System_Spec.md") == "order-system"
    assert component_name("docs/spec.md") == "spec"
    assert spec_slug(["docs/b-spec.md", "docs/a-spec.md"]) == spec_slug(
        ["docs/a-spec.md", "docs/b-spec.md"]
    )
    assert branch_name("pact/code/", ["docs/auth-service-spec.md"]) == "pact/code/auth-service"
    long = spec_slug([f"docs/a-very-long-component-name-{i}-spec.md" for i in range(5)])
    assert len(long) <= 60
    assert summary_path("auth-service") == "docs/implementation-summary-auth-service.md"


def test_paths_leaving_the_repository_are_refused_at_their_source() -> None:
    refused: list[Refused] = []
    specs, rest = specs_from_args(
        ["../../other/docs/x-spec.md", "docs/../../y-spec.md", "docs//./a-spec.md", "now"],
        refused=refused,
    )
    assert specs == ["docs/a-spec.md"]
    assert rest == ["now"]
    assert [(r.path, r.reason) for r in refused] == [
        ("../../other/docs/x-spec.md", "points outside the repository"),
        ("docs/../../y-spec.md", "points outside the repository"),
    ]
    refused = []
    body = "Do docs/../../../x/docs/a-spec.md, docs/.git/b-spec.md and docs/c-spec.md"
    assert spec_refs(body, refused=refused) == ["docs/c-spec.md"]
    assert [r.reason for r in refused] == ["points outside the repository", "inside .git"]
    assert specs_from_args(["docs/../x-spec.md"]) == ([], [])  # dropped even unasked
    assert "`../a`b.md` (x)" not in refused_paths_text([Refused("../a`b.md", "x")])
    assert refused_paths_text([Refused("../a.md", "points outside the repository")]) == (
        "These spec paths were refused: `../a.md` (points outside the repository). "
        "A spec must be a file inside this repository."
    )
