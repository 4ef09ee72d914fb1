"""The simulated GitHub's data: users, repositories, issues, pull requests, comments,
reviews, check runs and reactions, and how each renders as GitHub's JSON.

Plain records plus a ``World`` that owns them and hands out ids. Mutations that GitHub
would announce with a webhook live in ``github.py``; this module never sends anything.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import shapes
from .gitrepo import BareRepo, GitError, diff_hunk

ROLE_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # User | Organization | Bot
    role: str = "write"  # admin | maintain | write | triage | read | none


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: str


@dataclass
class Pull:
    id: int
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    draft: bool = False
    requested_reviewers: list[str] = field(default_factory=list)
    reviews: list[int] = field(default_factory=list)
    review_comments: list[int] = field(default_factory=list)


@dataclass
class Issue:
    id: int
    number: int
    title: str
    body: str | None
    author: str
    created_at: str
    updated_at: str
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    comments: list[int] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    pull: Pull | None = None


@dataclass
class Repo:
    """A simulated repository; ``path`` is its bare git repository, ``clone_url`` where git
    reaches it (basic auth ``x-access-token:<token>``)."""

    id: int
    owner: str
    name: str
    git: BareRepo
    clone_url: str
    created_at: str
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    pushed_at: str = ""
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role, this repo only

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def path(self) -> Path:
        return self.git.path

    @property
    def default_branch(self) -> str:
        return self.git.default_branch

    def read_file(self, ref: str, path: str) -> str | None:
        data = self.git.read(ref, path)
        return None if data is None else data.decode()

    def branches(self) -> dict[str, str]:
        return self.git.branches()


@dataclass
class Comment:
    id: int
    repo: str
    number: int
    author: str
    body: str
    created_at: str
    updated_at: str
    app_id: int | None = None
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Review:
    id: int
    repo: str
    number: int
    author: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED
    body: str | None
    commit_id: str
    submitted_at: str
    comment_ids: list[int] = field(default_factory=list)


@dataclass
class ReviewComment:
    id: int
    repo: str
    number: int
    review_id: int | None
    author: str
    body: str
    path: str
    line: int | None
    start_line: int | None
    diff_hunk: str
    position: int | None
    commit_id: str
    created_at: str
    in_reply_to: int | None = None
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class CheckRun:
    id: int
    suite_id: int
    repo: str
    app_id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: str
    completed_at: str | None
    output: dict[str, Any]
    actions: list[dict[str, Any]]
    external_id: str
    details_url: str | None


class World:
    """All simulated records, keyed by id; guarded by ``lock`` (REST runs in threads)."""

    def __init__(self, urls: shapes.Urls) -> None:
        self.urls = urls
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.comments: dict[int, Comment] = {}
        self.reviews: dict[int, Review] = {}
        self.review_comments: dict[int, ReviewComment] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.app_json: dict[int, dict[str, Any]] = {}

    def next_id(self) -> int:
        return next(self._ids)

    # --- lookups -----------------------------------------------------------------------

    def user(self, login: str, kind: str = "User", role: str = "none") -> User:
        with self.lock:
            if login not in self.users:
                self.users[login] = User(login, self.next_id(), kind, role)
            return self.users[login]

    def repo(self, ref: Repo | str) -> Repo:
        name = ref.full_name if isinstance(ref, Repo) else ref
        return self.repos[name.lower()]

    def find_repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def role(self, repo: Repo, login: str) -> str:
        user = self.users.get(login)
        if user is None:
            return "none"
        if user.login == repo.owner:
            return "admin"
        return repo.collaborators.get(login, user.role)

    def association(self, repo: Repo, login: str) -> str:
        user = self.users.get(login)
        if user is None or user.type == "Bot":
            return "NONE"
        if login == repo.owner:
            return "OWNER"
        if self.role(repo, login) == "none":  # a stranger; any role (read too) collaborates
            return "NONE"
        owner = self.users.get(repo.owner)
        return "MEMBER" if owner is not None and owner.type == "Organization" else "COLLABORATOR"

    # --- rendering -----------------------------------------------------------------------

    def render_user(self, login: str) -> dict[str, Any]:
        user = self.users.get(login) or self.user(login)
        return shapes.user(self.urls, user.login, user.id, user.type)

    def render_repo(self, repo: Repo) -> dict[str, Any]:
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        return shapes.repository(
            self.urls,
            rid=repo.id,
            owner=self.render_user(repo.owner),
            name=repo.name,
            default_branch=repo.default_branch,
            created_at=repo.created_at,
            pushed_at=repo.pushed_at or repo.created_at,
            open_issues=open_count,
            clone_url=repo.clone_url,
        )

    def render_labels(self, repo: Repo, names: list[str]) -> list[dict[str, Any]]:
        return [shapes.label(self.urls, repo.full_name, repo.labels[n], n) for n in names]

    @staticmethod
    def counts(reactions: list[Reaction]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in reactions:
            out[r.content] = out.get(r.content, 0) + 1
        return out

    def render_issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        return shapes.issue(
            self.urls,
            repo.full_name,
            iid=issue.id,
            number=issue.number,
            title=issue.title,
            body=issue.body,
            author=self.render_user(issue.author),
            labels=self.render_labels(repo, issue.labels),
            state=issue.state,
            comments=len(issue.comments),
            created_at=issue.created_at,
            updated_at=issue.updated_at,
            author_association=self.association(repo, issue.author),
            reactions=self.counts(issue.reactions),
            is_pull=issue.pull is not None,
        )

    def render_comment(self, comment: Comment) -> dict[str, Any]:
        repo = self.repo(comment.repo)
        issue = repo.issues[comment.number]
        return shapes.issue_comment(
            self.urls,
            repo.full_name,
            cid=comment.id,
            number=comment.number,
            is_pull=issue.pull is not None,
            author=self.render_user(comment.author),
            body=comment.body,
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            author_association=self.association(repo, comment.author),
            reactions=self.counts(comment.reactions),
            app=self.app_json.get(comment.app_id) if comment.app_id else None,
        )

    def render_reaction(self, reaction: Reaction) -> dict[str, Any]:
        return shapes.reaction(
            reaction.id, self.render_user(reaction.user), reaction.content, reaction.created_at
        )

    def render_pull(self, repo: Repo, issue: Issue, detailed: bool = True) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None
        repo_json = self.render_repo(repo)
        owner = self.render_user(repo.owner)
        stats = None
        if detailed:
            files = repo.git.diff(pull.base_sha, pull.head_sha)
            stats = {
                "comments": len(issue.comments),
                "review_comments": len(pull.review_comments),
                "commits": repo.git.count_commits(pull.base_sha, pull.head_sha),
                "additions": sum(f.additions for f in files),
                "deletions": sum(f.deletions for f in files),
                "changed_files": len(files),
                **_mergeability(repo, pull.base_ref, pull.head_sha),
            }
        return shapes.pull_request(
            self.urls,
            repo.full_name,
            pid=pull.id,
            number=issue.number,
            title=issue.title,
            body=issue.body,
            author=self.render_user(issue.author),
            state=issue.state,
            labels=self.render_labels(repo, issue.labels),
            head=shapes.branch_ref(owner, pull.head_ref, pull.head_sha, repo_json),
            base=shapes.branch_ref(owner, pull.base_ref, pull.base_sha, repo_json),
            created_at=issue.created_at,
            updated_at=issue.updated_at,
            author_association=self.association(repo, issue.author),
            requested_reviewers=[self.render_user(u) for u in pull.requested_reviewers],
            draft=pull.draft,
            stats=stats,
        )

    def render_files(self, repo: Repo, pull: Pull) -> list[dict[str, Any]]:
        return self.render_diff(repo, pull.base_sha, pull.head_sha)

    def render_diff(self, repo: Repo, base_sha: str, head_sha: str) -> list[dict[str, Any]]:
        """The files changed from `base_sha` to `head_sha`, as a PR's files and a comparison
        list them."""
        return [
            shapes.diff_entry(
                self.urls,
                repo.full_name,
                filename=f.filename,
                status=f.status,
                additions=f.additions,
                deletions=f.deletions,
                patch=f.patch,
                sha=f.sha,
                head_sha=head_sha,
            )
            for f in repo.git.diff(base_sha, head_sha)
        ]

    def render_review(self, review: Review) -> dict[str, Any]:
        repo = self.repo(review.repo)
        return shapes.review(
            self.urls,
            repo.full_name,
            rid=review.id,
            number=review.number,
            author=self.render_user(review.author),
            body=review.body,
            state=review.state,
            commit_id=review.commit_id,
            submitted_at=review.submitted_at,
            author_association=self.association(repo, review.author),
        )

    def render_review_comment(self, comment: ReviewComment) -> dict[str, Any]:
        repo = self.repo(comment.repo)
        return shapes.review_comment(
            self.urls,
            repo.full_name,
            cid=comment.id,
            review_id=comment.review_id,
            number=comment.number,
            author=self.render_user(comment.author),
            body=comment.body,
            path=comment.path,
            line=comment.line,
            start_line=comment.start_line,
            diff_hunk=comment.diff_hunk,
            position=comment.position,
            commit_id=comment.commit_id,
            created_at=comment.created_at,
            author_association=self.association(repo, comment.author),
            reactions=self.counts(comment.reactions),
            in_reply_to_id=comment.in_reply_to,
        )

    def pull_requests_of(self, repo: Repo, sha: str) -> list[dict[str, Any]]:
        out = []
        for issue in repo.issues.values():
            pull = issue.pull
            if pull and issue.state == "open" and pull.head_sha == sha:
                out.append(
                    shapes.pr_minimal(
                        self.urls,
                        repo.full_name,
                        repo.id,
                        repo.name,
                        id=pull.id,
                        number=issue.number,
                        head_ref=pull.head_ref,
                        head_sha=pull.head_sha,
                        base_ref=pull.base_ref,
                        base_sha=pull.base_sha,
                    )
                )
        return out

    def render_check_run(self, run: CheckRun) -> dict[str, Any]:
        repo = self.repo(run.repo)
        head_branch = next((b for b, sha in repo.branches().items() if sha == run.head_sha), None)
        return shapes.check_run(
            self.urls,
            repo.full_name,
            cid=run.id,
            suite_id=run.suite_id,
            name=run.name,
            head_sha=run.head_sha,
            head_branch=head_branch,
            status=run.status,
            conclusion=run.conclusion,
            started_at=run.started_at,
            completed_at=run.completed_at,
            output=run.output,
            actions=run.actions,
            external_id=run.external_id,
            details_url=run.details_url,
            app=self.app_json[run.app_id],
            pull_requests=self.pull_requests_of(repo, run.head_sha),
        )

    def hunk_for(self, repo: Repo, pull: Pull, path: str, line: int) -> tuple[str, int | None]:
        for change in repo.git.diff(pull.base_sha, pull.head_sha):
            if change.filename == path:
                return diff_hunk(change.patch, line)
        return "", None


def _mergeability(repo: Repo, base_ref: str, head_sha: str) -> dict[str, Any]:
    """GitHub's `mergeable` / `mergeable_state` against the base branch as it is now:
    "dirty" when merging it would conflict."""
    base = repo.git.rev(base_ref)
    if base is None:
        return {}
    try:
        repo.git.git("merge-tree", "--write-tree", "--name-only", base, head_sha)
    except GitError as e:
        if e.code != 1:  # 1: the merge conflicts; anything else is a simulator bug
            raise
        return {"mergeable": False, "mergeable_state": "dirty"}
    return {"mergeable": True, "mergeable_state": "clean"}
