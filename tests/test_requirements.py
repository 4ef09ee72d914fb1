"""A spec's requirements: ids from the spec, MUST/SHALL/SHOULD sentences, code ignored."""

from __future__ import annotations

from pathlib import Path

from pact_bot.requirements import MAX_REQUIREMENTS, Requirement, extract_requirements

SPECS = Path(__file__).parent / "fixtures" / "specs"


def reqs(name: str) -> list[tuple[str, str, str, int, bool, str | None]]:
    text = (SPECS / name).read_text(encoding="utf-8")
    return [
        (r.id, r.text, r.section, r.line, r.explicit, r.keyword) for r in extract_requirements(text)
    ]


def test_rfc_style_spec() -> None:
    # The RFC 2119 boilerplate, the HTML comment and the mid-sentence "See R1" are not
    # requirements; R1's body MUST is part of R1; R4's wrapped line continues its text.
    assert reqs("rfc-style-spec.md") == [
        ("R1", "Token buckets", "R1: Token buckets", 14, True, "MUST"),
        ("R2", "Refill", "R2: Refill", 18, True, None),
        (
            "R3",
            "A request over the limit MUST be answered with `429 Too Many Requests`.",
            "3. Responses",
            24,
            True,
            "MUST",
        ),
        (
            "R4",
            "The response MUST carry a `Retry-After` header giving the seconds until a "
            "token is available.",
            "3. Responses",
            25,
            True,
            "MUST",
        ),
        (
            "S-e3fc30",
            "The service MUST NOT count requests that fail authentication.",
            "3. Responses",
            29,
            False,
            "MUST NOT",
        ),
        (
            "S-0c3286",
            "Limits SHOULD be logged at startup; the log line SHALL include the route.",
            "3. Responses",
            29,
            False,
            "SHOULD",
        ),
    ]


def test_user_story_spec() -> None:
    # US-1's nested acceptance criterion is part of US-1; US-9 is only mentioned.
    assert reqs("user-stories-spec.md") == [
        (
            "US-1",
            "As a shopper, I want to see my cart total before paying.",
            "Stories",
            5,
            True,
            "MUST",
        ),
        ("US-2", "As a shopper, I want to pay with a saved card.", "Stories", 8, True, None),
        (
            "US-3",
            "As an admin, I want to refund an order so that unhappy customers get their "
            "money back.",
            "Stories",
            9,
            True,
            None,
        ),
        (
            "US-4",
            "As a shopper, I want an email receipt. It SHOULD arrive within a minute.",
            "Out of scope",
            16,
            True,
            "SHOULD",
        ),
    ]


def test_table_of_fr_and_nfr_requirements() -> None:
    # Tables with and without outer pipes, ids in backticks or bold; a row without an id
    # but with MUST; a heading id whose body holds the SHALL.
    assert reqs("requirements-table-spec.md") == [
        ("FR-1", "List items with pagination", "Functional requirements", 7, True, None),
        (
            "FR-2",
            "Reserve stock for an order; a reservation MUST expire after 15 minutes",
            "Functional requirements",
            8,
            True,
            "MUST",
        ),
        ("FR-3", "Release a reservation", "Functional requirements", 9, True, None),
        (
            "NFR-1",
            "p99 latency under 200 ms at 500 rps",
            "Non-functional requirements",
            15,
            True,
            None,
        ),
        ("NFR-2", "Every write is audited", "Non-functional requirements", 16, True, None),
        (
            "S-8cbaee",
            "Tokens MUST be validated on every request",
            "Non-functional requirements",
            20,
            False,
            "MUST",
        ),
        ("REQ-AUTH-3", "Admin access", "REQ-AUTH-3 Admin access", 23, True, "SHALL"),
    ]


def test_spec_without_ids_lists_its_keyword_sentences() -> None:
    # Lower-case "must" is prose.
    assert reqs("plain-must-spec.md") == [
        (
            "S-be5658",
            "Notifications MUST be sent at most once per event.",
            "Delivery",
            7,
            False,
            "MUST",
        ),
        (
            "S-ef1659",
            "A failed send SHOULD be retried with exponential backoff.",
            "Delivery",
            7,
            False,
            "SHOULD",
        ),
        ("S-0666fd", "Retries MUST NOT exceed five attempts.", "Delivery", 8, False, "MUST NOT"),
        ("S-961e83", "Phone numbers MUST be stored encrypted.", "Privacy", 14, False, "MUST"),
        (
            "S-846ef4",
            "Logs SHALL NOT contain message bodies.",
            "Privacy",
            15,
            False,
            "SHALL NOT",
        ),
    ]


def test_code_blocks_and_comments_are_not_requirements() -> None:
    assert reqs("code-blocks-spec.md") == [
        ("S-47e35f", "The loader MUST accept YAML files.", "Format", 5, False, "MUST"),
        (
            "R5",
            "An invalid file MUST be reported with its line number.",
            "Errors",
            27,
            True,
            "MUST",
        ),
    ]


def test_sentence_ids_survive_edits_elsewhere() -> None:
    before = "# S\n\n## Delivery\n\nMails MUST be sent once.\n"
    after = (
        "# S\n\nIntro MUST be read.\n\n## Delivery (renamed)\n\n"
        "New text SHOULD come first. Mails MUST be sent once.\n"
    )
    (old,) = extract_requirements(before)
    new = extract_requirements(after)
    assert [r.id for r in new if r.text == old.text] == [old.id]
    assert len({r.id for r in new}) == 3


def test_identical_sentences_get_distinct_ids_and_ids_are_defined_once() -> None:
    text = (
        "## A\n\nClients MUST retry.\n\n## B\n\nClients MUST retry.\n\n- R1: first\n- R1: again\n"
    )
    out = extract_requirements(text)
    base = out[0].id
    assert [(r.id, r.section, r.line) for r in out] == [
        (base, "A", 3),
        (f"{base}-2", "B", 7),
        ("R1", "B", 9),
    ]
    assert out[2] == Requirement("R1", "first", "B", 9, True, None)


def test_ids_inside_words_or_sentences_are_references() -> None:
    text = "- FR-3is not an id\n- See FR-3 for details\n- HTTP2 is used\n- **R12**: yes\n"
    assert [r.id for r in extract_requirements(text)] == ["R12"]


def test_long_text_is_clipped_to_one_line() -> None:
    (r,) = extract_requirements("- REQ-1: " + "word " * 100 + "\n")
    assert len(r.text) == 160 and r.text.endswith("…") and "\n" not in r.text


def test_hostile_spec_is_bounded() -> None:
    text = "\n".join(f"- R{i}: thing {i}" for i in range(MAX_REQUIREMENTS + 500))
    out = extract_requirements(text)
    assert len(out) == MAX_REQUIREMENTS and out[-1].id == f"R{MAX_REQUIREMENTS - 1}"
    # an unclosed fence hides the rest; an unclosed comment too
    assert extract_requirements("```\nX MUST y.\n") == []
    assert extract_requirements("<!-- open\n- R1: hidden\n") == []


def test_table_row_with_id_and_text_in_one_cell() -> None:
    text = "| Requirement | Priority |\n|---|---|\n| FR-1: List items | High |\n| Note FR-2 | x |\n"
    assert [(r.id, r.text) for r in extract_requirements(text)] == [("FR-1", "List items")]


def test_pathological_specs_stay_fast() -> None:
    import time

    start = time.monotonic()
    extract_requirements("*a " * 300_000)  # emphasis markers that never close
    extract_requirements("\n".join("X MUST y." for _ in range(100_000)))  # one paragraph
    extract_requirements("| " * 300_000 + "\n|---|---|\n" + "| a | b |\n" * 50_000)
    assert time.monotonic() - start < 5
