"""GitHub's JSON shapes, filled with the simulator's values.

Each builder returns the object GitHub's REST API (and its webhooks) would send, with the
same keys as the real payloads in tests/fixtures/github-webhooks, so githubkit's
response models parse them and pact-bot's payload readers see what production sends.
Builders are pure: they take plain values and URLs, never simulator state.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REACTION_CONTENTS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


@dataclass(frozen=True)
class Urls:
    """Where the simulated GitHub lives: `api` is the REST root, `web` the html/git host."""

    api: str
    web: str

    def repo_api(self, full_name: str) -> str:
        return f"{self.api}/repos/{full_name}"

    def repo_web(self, full_name: str) -> str:
        return f"{self.web}/{full_name}"


def user(urls: Urls, login: str, uid: int, kind: str = "User") -> dict[str, Any]:
    api = f"{urls.api}/users/{login}"
    html = (
        f"{urls.web}/apps/{login.removesuffix('[bot]')}"
        if kind == "Bot"
        else (f"{urls.web}/{login}")
    )
    return {
        "login": login,
        "id": uid,
        "node_id": node_id(kind, uid),
        "avatar_url": f"{urls.web}/avatars/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": html,
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository(
    urls: Urls,
    *,
    rid: int,
    owner: dict[str, Any],
    name: str,
    default_branch: str,
    created_at: str,
    pushed_at: str,
    open_issues: int,
    clone_url: str,
    permissions: dict[str, bool] | None = None,
) -> dict[str, Any]:
    full = f"{owner['login']}/{name}"
    api = urls.repo_api(full)
    html = urls.repo_web(full)
    host = urls.web.split("://", 1)[1]
    repo: dict[str, Any] = {
        "id": rid,
        "node_id": node_id("Repository", rid),
        "name": name,
        "full_name": full,
        "private": True,
        "owner": owner,
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": created_at,
        "updated_at": pushed_at,
        "pushed_at": pushed_at,
        "git_url": f"git://{host}/{full}.git",
        "ssh_url": f"git@{host}:{full}.git",
        "clone_url": clone_url,
        "svn_url": html,
        "mirror_url": None,
        "homepage": None,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": "Python",
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private",
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": default_branch,
        "temp_clone_token": None,
        "network_count": 0,
        "subscribers_count": 0,
        "custom_properties": {},
    }
    if permissions is not None:
        repo["permissions"] = permissions
    return repo


def label(urls: Urls, full_name: str, lid: int, name: str) -> dict[str, Any]:
    return {
        "id": lid,
        "node_id": node_id("Label", lid),
        "url": f"{urls.repo_api(full_name)}/labels/{name}",
        "name": name,
        "color": "ededed",
        "default": False,
        "description": None,
        "archived_at": None,
        "archived_by": None,
    }


def reactions_rollup(url: str, counts: dict[str, int]) -> dict[str, Any]:
    rollup: dict[str, Any] = {"url": url, "total_count": sum(counts.values())}
    for content in REACTION_CONTENTS:
        rollup[content] = counts.get(content, 0)
    return rollup


def issue(
    urls: Urls,
    full_name: str,
    *,
    iid: int,
    number: int,
    title: str,
    body: str | None,
    author: dict[str, Any],
    labels: list[dict[str, Any]],
    state: str,
    comments: int,
    created_at: str,
    updated_at: str,
    author_association: str,
    reactions: dict[str, int],
    is_pull: bool,
    repository: dict[str, Any] | None = None,
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/issues/{number}"
    html_kind = "pull" if is_pull else "issues"
    out: dict[str, Any] = {
        "url": api,
        "repository_url": urls.repo_api(full_name),
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{urls.repo_web(full_name)}/{html_kind}/{number}",
        "id": iid,
        "node_id": node_id("Issue", iid),
        "number": number,
        "title": title,
        "user": author,
        "labels": labels,
        "state": state,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": comments,
        "created_at": created_at,
        "updated_at": updated_at,
        "closed_at": None,
        "author_association": author_association,
        "active_lock_reason": None,
        "body": body,
        "reactions": reactions_rollup(f"{api}/reactions", reactions),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
        "state_reason": None,
        "draft": False,
    }
    if is_pull:
        pulls = f"{urls.repo_api(full_name)}/pulls/{number}"
        web = f"{urls.repo_web(full_name)}/pull/{number}"
        out["pull_request"] = {
            "url": pulls,
            "html_url": web,
            "diff_url": f"{web}.diff",
            "patch_url": f"{web}.patch",
            "merged_at": None,
        }
    if repository is not None:
        out["repository"] = repository
    return out


def issue_comment(
    urls: Urls,
    full_name: str,
    *,
    cid: int,
    number: int,
    is_pull: bool,
    author: dict[str, Any],
    body: str,
    created_at: str,
    updated_at: str,
    author_association: str,
    reactions: dict[str, int],
    app: dict[str, Any] | None,
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/issues/comments/{cid}"
    kind = "pull" if is_pull else "issues"
    return {
        "url": api,
        "html_url": f"{urls.repo_web(full_name)}/{kind}/{number}#issuecomment-{cid}",
        "issue_url": f"{urls.repo_api(full_name)}/issues/{number}",
        "id": cid,
        "node_id": node_id("IssueComment", cid),
        "user": author,
        "created_at": created_at,
        "updated_at": updated_at,
        "author_association": author_association,
        "body": body,
        "reactions": reactions_rollup(f"{api}/reactions", reactions),
        "performed_via_github_app": app,
    }


def reaction(rid: int, author: dict[str, Any], content: str, created_at: str) -> dict[str, Any]:
    return {
        "id": rid,
        "node_id": node_id("Reaction", rid),
        "user": author,
        "content": content,
        "created_at": created_at,
    }


def branch_ref(owner: dict[str, Any], ref: str, sha: str, repo: dict[str, Any]) -> dict[str, Any]:
    return {"label": f"{owner['login']}:{ref}", "ref": ref, "sha": sha, "user": owner, "repo": repo}


def pull_request(
    urls: Urls,
    full_name: str,
    *,
    pid: int,
    number: int,
    title: str,
    body: str | None,
    author: dict[str, Any],
    state: str,
    labels: list[dict[str, Any]],
    head: dict[str, Any],
    base: dict[str, Any],
    created_at: str,
    updated_at: str,
    author_association: str,
    requested_reviewers: list[dict[str, Any]],
    draft: bool,
    stats: dict[str, int] | None,
) -> dict[str, Any]:
    """A full pull request; `stats` (commits, additions, deletions, changed_files, comments,
    review_comments) turns the simple listing shape into the detailed one."""
    repo_api = urls.repo_api(full_name)
    api = f"{repo_api}/pulls/{number}"
    web = f"{urls.repo_web(full_name)}/pull/{number}"
    out: dict[str, Any] = {
        "url": api,
        "id": pid,
        "node_id": node_id("PullRequest", pid),
        "html_url": web,
        "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch",
        "issue_url": f"{repo_api}/issues/{number}",
        "number": number,
        "state": state,
        "locked": False,
        "title": title,
        "user": author,
        "body": body,
        "created_at": created_at,
        "updated_at": updated_at,
        "closed_at": None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": requested_reviewers,
        "requested_teams": [],
        "labels": labels,
        "milestone": None,
        "draft": draft,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{repo_api}/pulls/comments{{/number}}",
        "comments_url": f"{repo_api}/issues/{number}/comments",
        "statuses_url": f"{repo_api}/statuses/{head['sha']}",
        "head": head,
        "base": base,
        "_links": {
            "self": {"href": api},
            "html": {"href": web},
            "issue": {"href": f"{repo_api}/issues/{number}"},
            "comments": {"href": f"{repo_api}/issues/{number}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{repo_api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": f"{repo_api}/statuses/{head['sha']}"},
        },
        "author_association": author_association,
        "auto_merge": None,
        "active_lock_reason": None,
    }
    if stats is not None:
        out.update(
            {
                "merged": False,
                "mergeable": True,
                "rebaseable": True,
                "mergeable_state": "clean",
                "merged_by": None,
                "maintainer_can_modify": False,
                **stats,
            }
        )
    return out


def review(
    urls: Urls,
    full_name: str,
    *,
    rid: int,
    number: int,
    author: dict[str, Any],
    body: str | None,
    state: str,
    commit_id: str,
    submitted_at: str,
    author_association: str,
) -> dict[str, Any]:
    web = f"{urls.repo_web(full_name)}/pull/{number}#pullrequestreview-{rid}"
    pr_api = f"{urls.repo_api(full_name)}/pulls/{number}"
    return {
        "id": rid,
        "node_id": node_id("PullRequestReview", rid),
        "user": author,
        "body": body or "",
        "commit_id": commit_id,
        "submitted_at": submitted_at,
        "state": state,
        "html_url": web,
        "pull_request_url": pr_api,
        "author_association": author_association,
        "_links": {"html": {"href": web}, "pull_request": {"href": pr_api}},
    }


def review_comment(
    urls: Urls,
    full_name: str,
    *,
    cid: int,
    review_id: int | None,
    number: int,
    author: dict[str, Any],
    body: str,
    path: str,
    line: int | None,
    start_line: int | None,
    diff_hunk: str,
    position: int | None,
    commit_id: str,
    created_at: str,
    author_association: str,
    reactions: dict[str, int],
    in_reply_to_id: int | None,
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/pulls/comments/{cid}"
    web = f"{urls.repo_web(full_name)}/pull/{number}#discussion_r{cid}"
    pr_api = f"{urls.repo_api(full_name)}/pulls/{number}"
    out: dict[str, Any] = {
        "url": api,
        "pull_request_review_id": review_id,
        "id": cid,
        "node_id": node_id("PullRequestReviewComment", cid),
        "diff_hunk": diff_hunk,
        "path": path,
        "position": position,
        "original_position": position,
        "commit_id": commit_id,
        "original_commit_id": commit_id,
        "user": author,
        "body": body,
        "created_at": created_at,
        "updated_at": created_at,
        "html_url": web,
        "pull_request_url": pr_api,
        "author_association": author_association,
        "_links": {
            "self": {"href": api},
            "html": {"href": web},
            "pull_request": {"href": pr_api},
        },
        "reactions": reactions_rollup(f"{api}/reactions", reactions),
        "start_line": start_line,
        "original_start_line": start_line,
        "start_side": "RIGHT" if start_line else None,
        "line": line,
        "original_line": line,
        "side": "RIGHT",
        "subject_type": "line",
    }
    if in_reply_to_id is not None:
        out["in_reply_to_id"] = in_reply_to_id
    return out


def diff_entry(
    urls: Urls,
    full_name: str,
    *,
    filename: str,
    status: str,
    additions: int,
    deletions: int,
    patch: str | None,
    sha: str,
    head_sha: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sha": sha,
        "filename": filename,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": f"{urls.repo_web(full_name)}/blob/{head_sha}/{filename}",
        "raw_url": f"{urls.repo_web(full_name)}/raw/{head_sha}/{filename}",
        "contents_url": f"{urls.repo_api(full_name)}/contents/{filename}?ref={head_sha}",
    }
    if patch is not None:
        out["patch"] = patch
    return out


def content_file(
    urls: Urls, full_name: str, *, path: str, sha: str, data: bytes, ref: str
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/contents/{path}?ref={ref}"
    html = f"{urls.repo_web(full_name)}/blob/{ref}/{path}"
    git = f"{urls.repo_api(full_name)}/git/blobs/{sha}"
    encoded = base64.encodebytes(data).decode()
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": sha,
        "url": api,
        "git_url": git,
        "html_url": html,
        "download_url": f"{urls.repo_web(full_name)}/raw/{ref}/{path}",
        "_links": {"self": api, "git": git, "html": html},
    }


def content_dir_entry(
    urls: Urls, full_name: str, *, path: str, sha: str, kind: str, size: int, ref: str
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/contents/{path}?ref={ref}"
    html = f"{urls.repo_web(full_name)}/{'blob' if kind == 'file' else 'tree'}/{ref}/{path}"
    git = f"{urls.repo_api(full_name)}/git/{'blobs' if kind == 'file' else 'trees'}/{sha}"
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": api,
        "git_url": git,
        "html_url": html,
        "download_url": f"{urls.repo_web(full_name)}/raw/{ref}/{path}" if kind == "file" else None,
        "_links": {"self": api, "git": git, "html": html},
    }


def app(
    urls: Urls,
    *,
    app_id: int,
    slug: str,
    name: str,
    owner: dict[str, Any],
    permissions: dict[str, str],
    events: list[str],
    client_id: str,
    created_at: str,
) -> dict[str, Any]:
    return {
        "id": app_id,
        "slug": slug,
        "node_id": node_id("App", app_id),
        "client_id": client_id,
        "owner": owner,
        "name": name,
        "description": "",
        "external_url": f"{urls.web}/apps/{slug}",
        "html_url": f"{urls.web}/apps/{slug}",
        "created_at": created_at,
        "updated_at": created_at,
        "permissions": permissions,
        "events": events,
        "installations_count": 1,
    }


def installation(
    urls: Urls,
    *,
    inst_id: int,
    account: dict[str, Any],
    app_id: int,
    app_slug: str,
    permissions: dict[str, str],
    events: list[str],
    created_at: str,
) -> dict[str, Any]:
    return {
        "id": inst_id,
        "client_id": None,
        "account": account,
        "repository_selection": "all",
        "access_tokens_url": f"{urls.api}/app/installations/{inst_id}/access_tokens",
        "repositories_url": f"{urls.api}/installation/repositories",
        "html_url": f"{urls.web}/organizations/{account['login']}/settings/installations/{inst_id}",
        "app_id": app_id,
        "app_slug": app_slug,
        "target_id": account["id"],
        "target_type": account["type"],
        "permissions": permissions,
        "events": events,
        "created_at": created_at,
        "updated_at": created_at,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def check_run(
    urls: Urls,
    full_name: str,
    *,
    cid: int,
    suite_id: int,
    name: str,
    head_sha: str,
    head_branch: str | None,
    status: str,
    conclusion: str | None,
    started_at: str,
    completed_at: str | None,
    output: dict[str, Any],
    actions: list[dict[str, Any]],
    external_id: str,
    details_url: str | None,
    app: dict[str, Any],
    pull_requests: list[dict[str, Any]],
) -> dict[str, Any]:
    api = f"{urls.repo_api(full_name)}/check-runs/{cid}"
    out_full = {
        "title": output.get("title"),
        "summary": output.get("summary"),
        "text": output.get("text"),
        "annotations_count": len(output.get("annotations", [])),
        "annotations_url": f"{api}/annotations",
    }
    return {
        "id": cid,
        "node_id": node_id("CheckRun", cid),
        "head_sha": head_sha,
        "external_id": external_id,
        "url": api,
        "html_url": f"{urls.repo_web(full_name)}/runs/{cid}",
        "details_url": details_url or f"{urls.repo_web(full_name)}/runs/{cid}",
        "status": status,
        "conclusion": conclusion,
        "started_at": started_at,
        "completed_at": completed_at,
        "output": out_full,
        "name": name,
        "check_suite": {
            "id": suite_id,
            "node_id": node_id("CheckSuite", suite_id),
            "head_branch": head_branch,
            "head_sha": head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{urls.repo_api(full_name)}/check-suites/{suite_id}",
            "before": None,
            "after": head_sha,
            "pull_requests": pull_requests,
            "app": app,
            "created_at": started_at,
            "updated_at": completed_at or started_at,
        },
        "app": app,
        "actions": actions,
        "pull_requests": pull_requests,
    }


def pr_minimal(urls: Urls, full_name: str, repo_id: int, name: str, **pr: Any) -> dict[str, Any]:
    """The short pull request form inside check runs."""
    repo = {"id": repo_id, "url": urls.repo_api(full_name), "name": name}
    return {
        "url": f"{urls.repo_api(full_name)}/pulls/{pr['number']}",
        "id": pr["id"],
        "number": pr["number"],
        "head": {"ref": pr["head_ref"], "sha": pr["head_sha"], "repo": repo},
        "base": {"ref": pr["base_ref"], "sha": pr["base_sha"], "repo": repo},
    }


def error(message: str, doc: str = "https://docs.github.com/rest", **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": doc, **extra}


def git_commit(
    urls: Urls,
    full_name: str,
    *,
    sha: str,
    tree: str,
    message: str,
    author: tuple[str, str],
    date: str,
    parents: tuple[str, ...],
) -> dict[str, Any]:
    """A commit as the REST API renders it (`GET /repos/{o}/{r}/commits/{sha}`, `compare`)."""
    api, html = urls.repo_api(full_name), urls.repo_web(full_name)
    person = {"name": author[0], "email": author[1], "date": date}
    return {
        "url": f"{api}/commits/{sha}",
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:7], 16)),
        "html_url": f"{html}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": person,
            "committer": dict(person),
            "message": message,
            "comment_count": 0,
            "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in parents
        ],
    }


def comparison(
    urls: Urls,
    full_name: str,
    *,
    base: str,
    head: str,
    base_commit: dict[str, Any],
    merge_base_commit: dict[str, Any],
    commits: list[dict[str, Any]],
    behind_by: int,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """`GET /repos/{o}/{r}/compare/{base}...{head}` (commit-comparison)."""
    api, html = urls.repo_api(full_name), urls.repo_web(full_name)
    ahead = len(commits)
    status = (
        "identical"
        if not ahead and not behind_by
        else "ahead"
        if not behind_by
        else "behind"
        if not ahead
        else "diverged"
    )
    return {
        "url": f"{api}/compare/{base}...{head}",
        "html_url": f"{html}/compare/{base}...{head}",
        "permalink_url": f"{html}/compare/{full_name.split('/')[0]}:{base}...{head}",
        "diff_url": f"{html}/compare/{base}...{head}.diff",
        "patch_url": f"{html}/compare/{base}...{head}.patch",
        "base_commit": base_commit,
        "merge_base_commit": merge_base_commit,
        "status": status,
        "ahead_by": ahead,
        "behind_by": behind_by,
        "total_commits": ahead,
        "commits": commits,
        "files": files,
    }


def push_event(
    urls: Urls,
    *,
    repository: dict[str, Any],
    ref: str,
    before: str,
    after: str,
    head: dict[str, Any] | None,
    pusher: tuple[str, str],
    commits: list[dict[str, Any]],
) -> dict[str, Any]:
    """The `push` webhook's body besides `sender` and `installation` (no action)."""
    full_name = repository["full_name"]
    zero = "0" * 40
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": repository,
        "pusher": {"name": pusher[0], "email": pusher[1]},
        "created": before == zero,
        "deleted": after == zero,
        "forced": False,
        "base_ref": None,
        "compare": f"{urls.repo_web(full_name)}/compare/{before[:12]}...{after[:12]}",
        "commits": commits,
        "head_commit": head,
    }


def push_commit(
    urls: Urls,
    full_name: str,
    *,
    sha: str,
    tree: str,
    message: str,
    author: tuple[str, str],
    date: str,
    added: list[str],
    removed: list[str],
    modified: list[str],
) -> dict[str, Any]:
    """One item of a push's `commits` (and its `head_commit`)."""
    person = {"name": author[0], "email": author[1], "username": author[0]}
    return {
        "id": sha,
        "tree_id": tree,
        "distinct": True,
        "message": message,
        "timestamp": date,
        "url": f"{urls.repo_web(full_name)}/commit/{sha}",
        "author": person,
        "committer": dict(person),
        "added": added,
        "removed": removed,
        "modified": modified,
    }
