"""The GitHub simulator's pull request page: what a person sees at a PR's ``html_url``."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from githubkit import AppInstallationAuthStrategy, GitHub
from sim.github import GitHubSim

BODY = """This pull request implements the following spec:

- `docs/cart-spec.md`

### Files

| file | change | + | − |
| --- | --- | ---: | ---: |
| `src/cart.py` | added | 12 | 0 |

```python
print("hi")
```

<sub>pact-bot job `j-1`</sub>
"""
HANDOFF = "### Handoff to the Test phase\n\n1. run `pytest`\n2. read the summary"


def bot_client(sim: GitHubSim) -> GitHub[Any]:
    strategy = AppInstallationAuthStrategy(
        str(sim.app_id), sim.private_key_pem, sim.installation_id
    )
    return GitHub(strategy, base_url=sim.base_url)


def text(page: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    no_tags = re.sub(r"<!--.*?-->|<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(no_tags)).strip()


def bot_pr(sim: GitHubSim) -> tuple[GitHub[Any], int, str]:
    repo = sim.add_repo("acme", "shop", files={"README.md": "# Shop\n"})
    sim.add_user("alice", "write")
    sha = sim.commit(repo, "pact/code/cart", {"src/cart.py": "x = 1\n"}, "Implement cart")
    gh = bot_client(sim)
    pr = gh.rest.pulls.create(
        "acme", "shop", title="Implement cart", head="pact/code/cart", base="main", body=BODY
    ).parsed_data
    gh.rest.pulls.request_reviewers("acme", "shop", pr.number, reviewers=["alice"])
    gh.rest.checks.create(
        "acme",
        "shop",
        name="PACT Code",
        head_sha=sha,
        status="completed",
        conclusion="success",
        output={"title": "Implemented 1 spec", "summary": "ok"},
    )
    return gh, pr.number, pr.html_url


def test_pr_page_shows_title_state_branches_body_comments_checks_and_reviewers(
    github_sim: GitHubSim,
) -> None:
    gh, number, url = bot_pr(github_sim)
    assert url == f"{github_sim.web_url}/acme/shop/pull/{number}"
    gh.rest.issues.create_comment("acme", "shop", number, body=HANDOFF)
    github_sim.comment("acme/shop", number, "Thanks, **looks good**", user="alice")
    calls = len(github_sim.requests)

    response = httpx.get(url, trust_env=False)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    seen = text(page)
    assert f"Implement cart #{number}" in seen
    assert "Open pact-bot[bot] wants to merge 1 commit into main from pact/code/cart" in seen
    # the body's Markdown is rendered: heading, table (right-aligned numbers), code, list
    assert "<h3>Files</h3>" in page
    assert re.search(r"<table>.*<th[^>]*>file</th>.*<td><code>src/cart.py</code></td>", page, re.S)
    assert '<td style="text-align:right">12</td>' in page
    assert '<pre><code class="language-python">' in page
    assert "<li><code>docs/cart-spec.md</code></li>" in page
    assert "<sub>pact-bot job <code>j-1</code></sub>" in page
    # the conversation: the bot's comment with its badge, then alice's, both rendered
    assert "<h3>Handoff to the Test phase</h3>" in page
    assert "<li>run <code>pytest</code></li>" in page
    assert seen.index("pact-bot[bot] bot commented") < seen.index("alice commented")
    assert "<strong>looks good</strong>" in page
    # the check run, the requested reviewer
    assert "All checks have passed" in seen
    assert "PACT Code Successful in" in seen and "Implemented 1 spec" in seen
    assert "alice · Awaiting requested review" in seen
    # self-contained, and not an API call
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    assert len(github_sim.requests) == calls


def test_pr_page_shows_reviews_and_closed_state(github_sim: GitHubSim) -> None:
    gh, number, url = bot_pr(github_sim)
    github_sim.submit_review(
        "acme/shop",
        number,
        "alice",
        state="CHANGES_REQUESTED",
        body="Almost",
        comments=[{"path": "src/cart.py", "line": 1, "body": "rename `x` to `total`"}],
    )
    gh.rest.pulls.update("acme", "shop", number, state="closed")

    seen = text(httpx.get(url, trust_env=False).text)

    assert f"Implement cart #{number} Closed" in seen
    assert "alice requested changes" in seen and "Almost" in seen
    assert "src/cart.py line 1" in seen and "rename x to total" in seen
    assert "alice · requested changes" in seen


def test_pages_that_are_not_pull_requests_answer_404(github_sim: GitHubSim) -> None:
    _, number, _ = bot_pr(github_sim)
    issue = github_sim.open_issue("acme/shop", "A bug", user="alice")
    web = github_sim.web_url
    for path in (
        f"/acme/shop/pull/{number + 100}",
        f"/acme/shop/pull/{issue}",
        f"/acme/nope/pull/{number}",
        "/acme/shop/pull/abc",
    ):
        assert httpx.get(web + path, trust_env=False).status_code == 404, path
    assert github_sim.errors == []
