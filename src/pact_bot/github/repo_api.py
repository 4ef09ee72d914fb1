"""Every GitHub call a job makes on its repository, through githubkit's typed REST methods.

One `RepoAPI` per job, over the job's `RepoClient` (its token reaches that repository
only). Lists are read with githubkit's `paginate` (it follows GitHub's `Link` headers),
capped where GitHub itself caps them. Calls whose failure must never fail a job (a
reaction, a review request, a check run) run inside `best_effort(what)`, which logs the
failure once.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from githubkit.exception import GitHubException, RequestFailed
from githubkit_schemas.latest.models import (
    CheckAnnotation,
    CheckRun,
    Commit,
    ContentFile,
    DiffEntry,
    IssueComment,
    PullRequest,
    PullRequestSimple,
    ReviewComment,
)

from pact_bot.github.client import RepoClient

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = ("admin", "maintain", "write")
PAGE = 100  # GitHub's largest page
MAX_PR_FILES = 3_000  # GitHub lists at most 3,000 files of a pull request
MAX_COMMENT_PAGES = 10  # markers are looked for in the first 1,000 comments


@contextlib.contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run a call whose failure is logged (once, here) and otherwise ignored."""
    try:
        yield
    except GitHubException:
        log.warning("could not %s", what, exc_info=True)


@dataclass(frozen=True)
class RepoInfo:
    default_branch: str
    clone_url: str


class RepoAPI:
    def __init__(self, client: RepoClient) -> None:
        self.client = client
        self.gh = client.gh
        self.repo = client.repo
        self.owner, self.name = client.owner, client.name

    async def token(self) -> str:
        """The installation token, for git (refreshed near expiry)."""
        return await self.client.token()

    async def info(self, fallback_branch: str | None = None) -> RepoInfo:
        data = await self.client.repository()
        branch = str(data.get("default_branch") or fallback_branch or "main")
        return RepoInfo(default_branch=branch, clone_url=str(data["clone_url"]))

    # -- issues and comments ---------------------------------------------------------

    async def comment(self, number: int, body: str) -> int:
        resp = await self.gh.rest.issues.async_create_comment(
            self.owner, self.name, number, body=body
        )
        return int(resp.parsed_data.id)

    async def edit_comment(self, comment_id: int, body: str) -> None:
        await self.gh.rest.issues.async_update_comment(self.owner, self.name, comment_id, body=body)

    async def find_comments(
        self, number: int, *needles: str, author: str | None = None
    ) -> dict[str, int]:
        """Ids of the first comments holding each hidden marker (first 1,000 comments); with
        `author`, only comments that login wrote (`"Bot"`: any bot account) count, since
        anyone can paste a marker into a comment of their own."""
        found: dict[str, int] = {}
        seen = 0
        c: IssueComment
        async for c in self.gh.rest.paginate(
            self.gh.rest.issues.async_list_comments,
            owner=self.owner,
            repo=self.name,
            issue_number=number,
            per_page=PAGE,
        ):
            seen += 1
            if author is not None and not _written_by(c, author):
                continue
            for n in needles:
                if n not in found and n in (c.body or ""):
                    found[n] = int(c.id)
            if len(found) == len(needles) or seen >= MAX_COMMENT_PAGES * PAGE:
                break
        return found

    async def react(self, *, comment_id: int | None = None, issue: int | None = None) -> None:
        """👀 on a comment, or on an issue."""
        if comment_id is not None:
            await self.gh.rest.reactions.async_create_for_issue_comment(
                self.owner, self.name, comment_id, content="eyes"
            )
        elif issue is not None:
            await self.gh.rest.reactions.async_create_for_issue(
                self.owner, self.name, issue, content="eyes"
            )

    # -- people ----------------------------------------------------------------------

    async def permission(self, login: str) -> str:
        """The user's permission on the repository (admin, maintain, write, …, or none).

        GitHub reports custom and `maintain` roles in `role_name`, with `permission` holding
        the classic level they include; either one being a write level grants write.
        """
        if not login:
            return "none"
        try:
            resp = await self.gh.rest.repos.async_get_collaborator_permission_level(
                self.owner, self.name, login
            )
        except RequestFailed as e:
            if e.response.status_code not in (403, 404):
                raise
            return "none"
        data = resp.parsed_data
        role = str(data.role_name or "")
        perm = str(data.permission or "none")
        if role in WRITE_PERMISSIONS:
            return role
        return perm if perm in WRITE_PERMISSIONS else (role or perm)

    async def user(self, login: str) -> tuple[int | None, str | None]:
        """(id, display name) of a user."""
        data = (await self.gh.rest.users.async_get_by_username(login)).parsed_data
        return int(data.id), (data.name or None)

    # -- contents --------------------------------------------------------------------

    async def file_text(self, path: str, ref: str) -> str | None:
        """A file's text at `ref`; None when there is no such file."""
        try:
            resp = await self.gh.rest.repos.async_get_content(self.owner, self.name, path, ref=ref)
        except RequestFailed as e:
            if e.response.status_code != 404:
                raise
            return None
        data = resp.parsed_data
        if not isinstance(data, ContentFile):
            return None
        return base64.b64decode(data.content or "").decode("utf-8", "replace")

    async def file_names(self, path: str, ref: str) -> list[str]:
        """Paths of the files directly in directory `path` at `ref` ([] when there is none)."""
        try:
            resp = await self.gh.rest.repos.async_get_content(self.owner, self.name, path, ref=ref)
        except RequestFailed as e:
            if e.response.status_code != 404:
                raise
            return []
        data = resp.parsed_data
        if not isinstance(data, list):
            return []
        return [item.path for item in data if item.type == "file"]

    async def compare(self, base: str, head: str) -> list[DiffEntry]:
        """The files `head` changed since its merge base with `base` (GitHub lists at most
        300, with `patch` left out of the largest)."""
        resp = await self.gh.rest.repos.async_compare_commits(
            self.owner, self.name, f"{base}...{head}"
        )
        return list(resp.parsed_data.files or [])

    async def create_issue(self, title: str, body: str) -> int:
        resp = await self.gh.rest.issues.async_create(self.owner, self.name, title=title, body=body)
        return resp.parsed_data.number

    # -- pull requests ---------------------------------------------------------------

    async def pull(self, number: int) -> PullRequest:
        return (await self.gh.rest.pulls.async_get(self.owner, self.name, number)).parsed_data

    async def pull_files(self, number: int) -> list[DiffEntry]:
        out: list[DiffEntry] = []
        async for f in self._pages(self.gh.rest.pulls.async_list_files, pull_number=number):
            out.append(f)
            if len(out) >= MAX_PR_FILES:
                break
        return out

    async def open_pull(self, branch: str) -> PullRequestSimple | None:
        """The open pull request whose head is `branch` of this repository."""
        resp = await self.gh.rest.pulls.async_list(
            self.owner, self.name, state="open", head=f"{self.owner}:{branch}", per_page=10
        )
        pulls = cast(list[PullRequestSimple], resp.parsed_data)
        return next((pr for pr in pulls if pr.head.ref == branch), None)

    async def create_pull(
        self, *, title: str, head: str, base: str, body: str, draft: bool
    ) -> PullRequest:
        resp = await self.gh.rest.pulls.async_create(
            self.owner,
            self.name,
            title=title,
            head=head,
            base=base,
            body=body,
            draft=draft,
            maintainer_can_modify=True,
        )
        return resp.parsed_data

    async def set_pull_body(self, number: int, body: str) -> None:
        await self.gh.rest.pulls.async_update(self.owner, self.name, number, body=body)

    async def set_pull_title(self, number: int, title: str) -> None:
        await self.gh.rest.pulls.async_update(self.owner, self.name, number, title=title)

    async def mark_ready(self, node_id: str) -> None:
        """Draft → ready for review: GitHub offers this through GraphQL only."""
        await self.gh.async_graphql(
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
            "{ pullRequest { isDraft } } }",
            {"id": node_id},
        )

    async def request_review(self, number: int, login: str) -> None:
        await self.gh.rest.pulls.async_request_reviewers(
            self.owner, self.name, number, reviewers=[login]
        )

    async def review_comments(self, number: int, review_id: int) -> list[ReviewComment]:
        return [
            c
            async for c in self._pages(
                self.gh.rest.pulls.async_list_comments_for_review,
                pull_number=number,
                review_id=review_id,
            )
        ]

    async def reply_in_thread(self, number: int, comment_id: int, body: str) -> None:
        await self.gh.rest.pulls.async_create_reply_for_review_comment(
            self.owner, self.name, number, comment_id, body=body
        )

    # -- checks ----------------------------------------------------------------------

    async def check_run(
        self,
        *,
        name: str,
        head_sha: str,
        conclusion: str,
        external_id: str,
        output: dict[str, Any],
        actions: list[dict[str, str]] | None = None,
        details_url: str | None = None,
    ) -> None:
        """A completed check run on a commit; `details_url` is where its "Details" go."""
        body: dict[str, Any] = {
            "name": name,
            "head_sha": head_sha,
            "status": "completed",
            "conclusion": conclusion,
            "external_id": external_id,
            "output": output,
        }
        if actions:
            body["actions"] = actions
        if details_url:
            body["details_url"] = details_url
        await self.gh.rest.checks.async_create(self.owner, self.name, data=body)  # type: ignore[call-overload]

    async def check_runs_for(self, sha: str) -> list[CheckRun]:
        """The latest check run of each name on a commit (GitHub's `filter=latest`)."""
        resp = await self.gh.rest.checks.async_list_for_ref(
            self.owner, self.name, sha, filter_="latest", per_page=PAGE
        )
        return list(resp.parsed_data.check_runs)  # a commit with more than 100: the first

    async def annotations(self, check_run_id: int, limit: int = 50) -> list[CheckAnnotation]:
        out: list[CheckAnnotation] = []
        async for a in self._pages(
            self.gh.rest.checks.async_list_annotations, check_run_id=check_run_id
        ):
            out.append(a)
            if len(out) >= limit:
                break
        return out

    async def pull_commits(self, number: int) -> list[Commit]:
        """The pull request's commits, oldest first (GitHub lists at most 250)."""
        return [
            c async for c in self._pages(self.gh.rest.pulls.async_list_commits, pull_number=number)
        ]

    async def comments_by(self, number: int, author: str) -> list[str]:
        """Bodies of the first 1,000 comments `author` wrote on an issue or PR."""
        out: list[str] = []
        seen = 0
        c: IssueComment
        async for c in self._pages(self.gh.rest.issues.async_list_comments, issue_number=number):
            seen += 1
            if _written_by(c, author):
                out.append(c.body or "")
            if seen >= MAX_COMMENT_PAGES * PAGE:
                break
        return out

    def _pages(self, method: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return aiter(
            self.gh.rest.paginate(method, owner=self.owner, repo=self.name, per_page=PAGE, **kwargs)
        )


def _written_by(comment: IssueComment, author: str) -> bool:
    user = comment.user
    if user is None:
        return False
    return user.type == "Bot" if author == "Bot" else user.login == author
