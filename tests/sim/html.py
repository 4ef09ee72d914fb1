"""A read-only web page for a simulated pull request, GitHub-like enough to recognise.

``GET {web_url}/{owner}/{repo}/pull/{number}`` (the ``html_url`` the API returns for a pull
request) shows what a person would look at on github.com: the title with its number, a state
badge (Open, Draft, Closed), the branch line (``<author> wants to merge N commits into
<base> from <head>``), tabs with the counts, the body and the conversation (issue comments
and reviews with their inline comments, in time order, each with its author and a ``bot``
badge for Apps), the check runs on the head commit with their conclusions, the requested
reviewers and the labels.

Markdown is rendered with markdown-it-py as GitHub renders comments: CommonMark plus tables
and strikethrough, single newlines as line breaks, raw HTML kept (``<sub>``, hidden
``<!-- -->`` markers); the simulator shows only its own test data, so nothing is sanitised.
One page with inline CSS, no scripts, no external assets: it renders offline (tests,
``docs/make_screenshot.py``). Unknown repositories, numbers that are not pull requests and
non-numeric numbers answer 404. Page views are not API calls: ``sim.requests`` stays as is.

``html_routes(sim) -> [Route]`` is mounted by ``rest.build_app``;
``pull_page(sim, owner, name, number) -> str | None`` renders one page (None: not a PR).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from .github import GitHubSim
    from .state import CheckRun, Issue, Repo, Review, ReviewComment, World

log = logging.getLogger(__name__)
_MD = MarkdownIt("commonmark", {"html": True, "breaks": True}).enable(["table", "strikethrough"])

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,
Arial,sans-serif;color:#1f2328;background:#fff}
a{color:#0969da;text-decoration:none}
header.top{background:#f6f8fa;border-bottom:1px solid #d1d9e0;padding:16px 32px 0}
header.top .repo{font-size:20px;margin-bottom:12px}
header.top .repo strong{font-weight:600}
nav.repo-tabs span{display:inline-block;padding:8px 12px;border-bottom:2px solid transparent}
nav.repo-tabs span.on{border-color:#fd8c73;font-weight:600}
main{max-width:1216px;margin:0 auto;padding:24px 32px}
h1.title{font-size:32px;font-weight:400;margin:0 0 8px}
h1.title .num{color:#59636e;font-weight:300}
.meta{display:flex;align-items:center;gap:8px;padding-bottom:16px;color:#59636e;
border-bottom:1px solid #d1d9e0}
.state{display:inline-block;padding:5px 12px;border-radius:2em;color:#fff;font-weight:500}
.state.open{background:#1f883d}.state.closed{background:#cf222e}.state.draft{background:#59636e}
.branch{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#0969da;
background:#ddf4ff;border-radius:6px;padding:2px 6px}
nav.pr-tabs{display:flex;gap:4px;border-bottom:1px solid #d1d9e0;margin:16px 0 24px}
nav.pr-tabs>span{padding:8px 16px;border:1px solid transparent;border-bottom:0;
border-radius:6px 6px 0 0;color:#59636e}
nav.pr-tabs>span.on{border-color:#d1d9e0;background:#fff;color:#1f2328;margin-bottom:-1px}
.count{display:inline-block;min-width:20px;padding:0 6px;border-radius:2em;
background:#818b981f;font-size:12px;text-align:center;color:#1f2328}
.diffstat{margin-left:auto;font-size:12px;align-self:center}.add{color:#1a7f37}.del{color:#d1242f}
.layout{display:flex;gap:24px;align-items:flex-start}
.timeline{flex:1;min-width:0}
aside{width:256px;flex:none;font-size:12px;color:#59636e}
aside h3{font-size:12px;color:#59636e;margin:0 0 8px;font-weight:600}
aside section{padding-bottom:16px;margin-bottom:16px;border-bottom:1px solid #d1d9e0}
aside .who{display:flex;align-items:center;gap:6px;color:#1f2328;margin:4px 0}
.label{display:inline-block;padding:0 8px;border-radius:2em;border:1px solid #d1d9e0;
font-weight:500;color:#1f2328;background:#f6f8fa}
.item{display:flex;gap:16px;margin-bottom:16px}
.avatar{flex:none;width:40px;height:40px;border-radius:50%;color:#fff;font-weight:600;
display:flex;align-items:center;justify-content:center;font-size:17px}
.avatar.small{width:20px;height:20px;font-size:10px}
.avatar.bot{border-radius:8px}
.box{flex:1;min-width:0;border:1px solid #d1d9e0;border-radius:6px}
.box>.head{background:#f6f8fa;border-bottom:1px solid #d1d9e0;padding:8px 16px;
border-radius:6px 6px 0 0;color:#59636e}
.box.author>.head{background:#ddf4ff;border-color:#b6e3ff}
.box.author{border-color:#b6e3ff}
.head strong{color:#1f2328}
.badge{display:inline-block;border:1px solid #d1d9e0;border-radius:2em;padding:0 7px;
font-size:12px;font-weight:500;color:#59636e;line-height:18px;margin-left:4px}
.assoc{float:right}
.body{padding:16px}
.review-state{font-weight:600}.approved{color:#1a7f37}.changes{color:#d1242f}
.inline{border:1px solid #d1d9e0;border-radius:6px;margin:8px 16px 16px}
.inline .path{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;padding:6px 12px;
background:#f6f8fa;border-bottom:1px solid #d1d9e0}
.inline .reply{border-top:1px solid #d1d9e0;padding:8px 12px}
.inline .reply:first-of-type{border-top:0}
.checks{border:1px solid #d1d9e0;border-radius:6px;margin:8px 0 0 56px}
.checks .head{padding:12px 16px;border-bottom:1px solid #d1d9e0;font-weight:600}
.checks .head small{display:block;font-weight:400;color:#59636e}
.check{display:flex;align-items:center;gap:8px;padding:8px 16px;border-top:1px solid #eef1f4}
.check:first-of-type{border-top:0}
.check .mark{font-weight:700;width:16px;text-align:center}
.check strong{white-space:nowrap}
.check .desc{color:#59636e}
.success{color:#1a7f37}.failure{color:#d1242f}.neutral{color:#59636e}.pending{color:#9a6700}
.markdown>*:first-child{margin-top:0}.markdown>*:last-child{margin-bottom:0}
.markdown h1,.markdown h2{border-bottom:1px solid #d1d9e0;padding-bottom:.3em}
.markdown h1{font-size:2em}.markdown h2{font-size:1.5em}.markdown h3{font-size:1.25em}
.markdown h1,.markdown h2,.markdown h3,.markdown h4{margin:24px 0 16px;font-weight:600;
line-height:1.25}
.markdown p,.markdown ul,.markdown ol,.markdown table,.markdown pre,.markdown blockquote{
margin:0 0 16px}
.markdown ul,.markdown ol{padding-left:2em}
.markdown code{font:85% ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:#818b9826;border-radius:6px;padding:.2em .4em}
.markdown pre{background:#f6f8fa;border-radius:6px;padding:16px;overflow:auto}
.markdown pre code{background:none;padding:0;font-size:85%}
.markdown table{border-collapse:collapse;display:block;width:max-content;max-width:100%;
overflow:auto}
.markdown th,.markdown td{border:1px solid #d1d9e0;padding:6px 13px}
.markdown th{font-weight:600}
.markdown tr:nth-child(2n){background:#f6f8fa}
.markdown blockquote{color:#59636e;border-left:.25em solid #d1d9e0;padding:0 1em;margin-left:0}
.markdown sub{color:#59636e}
"""


def render_markdown(text: str | None) -> str:
    """Markdown as GitHub renders a comment (see the module docstring)."""
    if not text or not text.strip():
        return '<p class="neutral"><em>No description provided.</em></p>'
    return _MD.render(text)


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return escape(iso)
    return moment.strftime("%b %-d, %Y, %H:%M UTC")


def _avatar(login: str, bot: bool, small: bool = False) -> str:
    hue = int(hashlib.sha256(login.encode()).hexdigest()[:4], 16) % 360
    classes = "avatar" + (" small" if small else "") + (" bot" if bot else "")
    initial = escape(login[:1].upper())
    return f'<span class="{classes}" style="background:hsl({hue},55%,45%)">{initial}</span>'


def _is_bot(world: World, login: str) -> bool:
    user = world.users.get(login)
    return login.endswith("[bot]") or (user is not None and user.type == "Bot")


def _who(world: World, login: str) -> str:
    badge = '<span class="badge">bot</span>' if _is_bot(world, login) else ""
    return f"<strong>{escape(login)}</strong>{badge}"


def _assoc(world: World, repo: Repo, login: str) -> str:
    association = world.association(repo, login)
    if association == "NONE":
        return ""
    return f'<span class="badge assoc">{escape(association.capitalize())}</span>'


def _comment_box(
    world: World, repo: Repo, login: str, verb: str, when: str, body: str | None, author: bool
) -> str:
    box = "box author" if author else "box"
    return (
        f'<div class="item">{_avatar(login, _is_bot(world, login))}'
        f'<div class="{box}"><div class="head">{_assoc(world, repo, login)}'
        f"{_who(world, login)} {verb} on {_when(when)}</div>"
        f'<div class="body markdown">{render_markdown(body)}</div></div></div>'
    )


_REVIEW_VERB = {
    "APPROVED": '<span class="review-state approved">approved these changes</span>',
    "CHANGES_REQUESTED": '<span class="review-state changes">requested changes</span>',
    "COMMENTED": "reviewed",
    "DISMISSED": "left a dismissed review",
}


def _review_box(
    world: World, repo: Repo, review: Review, threads: list[list[ReviewComment]]
) -> str:
    verb = _REVIEW_VERB.get(review.state, "reviewed")
    body = (
        f'<div class="body markdown">{render_markdown(review.body)}</div>'
        if review.body and review.body.strip()
        else ""
    )
    inline = []
    for thread in threads:
        first = thread[0]
        where = escape(first.path) + (f" line {first.line}" if first.line else "")
        replies = "".join(
            f'<div class="reply"><div>{_avatar(c.author, _is_bot(world, c.author), True)} '
            f"{_who(world, c.author)} · {_when(c.created_at)}</div>"
            f'<div class="markdown">{render_markdown(c.body)}</div></div>'
            for c in thread
        )
        inline.append(f'<div class="inline"><div class="path">{where}</div>{replies}</div>')
    return (
        f'<div class="item">{_avatar(review.author, _is_bot(world, review.author))}'
        f'<div class="box"><div class="head">{_assoc(world, repo, review.author)}'
        f"{_who(world, review.author)} {verb} on {_when(review.submitted_at)}</div>"
        f"{body}{''.join(inline)}</div></div>"
    )


def _duration(run: CheckRun) -> str:
    if not run.completed_at:
        return ""
    try:
        start = datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(run.completed_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return f" in {seconds // 60}m {seconds % 60}s" if seconds >= 60 else f" in {seconds}s"


_CONCLUSION = {
    "success": ("success", "✓", "Successful"),
    "failure": ("failure", "✗", "Failing"),
    "timed_out": ("failure", "✗", "Timed out"),
    "cancelled": ("neutral", "⊘", "Cancelled"),
    "action_required": ("failure", "!", "Action required"),
    "neutral": ("neutral", "–", "Neutral"),
    "skipped": ("neutral", "–", "Skipped"),
    "stale": ("neutral", "–", "Stale"),
}


def _checks(world: World, runs: list[CheckRun]) -> str:
    if not runs:
        return ""
    rows = []
    for run in runs:
        if run.status == "completed":
            cls, mark, word = _CONCLUSION.get(run.conclusion or "", ("neutral", "–", "Completed"))
            state = f"{word}{_duration(run)}"
        else:
            cls, mark = "pending", "●"
            state = "In progress" if run.status == "in_progress" else "Queued"
        title = run.output.get("title")
        desc = f"{state} — {escape(title)}" if title else state
        app = world.app_json.get(run.app_id, {}).get("slug", "")
        rows.append(
            f'<div class="check"><span class="mark {cls}">{mark}</span>'
            f"<strong>{escape(run.name)}</strong>"
            f'<span class="desc">{desc}{f" · {escape(app)}" if app else ""}</span></div>'
        )
    done = [r for r in runs if r.status == "completed"]
    failed = [r for r in done if _CONCLUSION.get(r.conclusion or "", ("neutral",))[0] == "failure"]
    if len(done) < len(runs):
        headline, cls = "Some checks haven’t completed yet", "pending"
    elif failed:
        headline, cls = "Some checks were not successful", "failure"
    else:
        headline, cls = "All checks have passed", "success"
    summary = f"{len(done)} completed of {len(runs)} check{'s' if len(runs) != 1 else ''}"
    return (
        f'<div class="checks"><div class="head"><span class="{cls}">{headline}</span>'
        f"<small>{summary}</small></div>{''.join(rows)}</div>"
    )


def _sidebar(world: World, repo: Repo, issue: Issue, reviews: list[Review]) -> str:
    assert issue.pull is not None
    latest: dict[str, str] = {}
    for review in reviews:
        latest[review.author] = review.state
    people = [(login, _REVIEW_VERB.get(state, "reviewed")) for login, state in latest.items()]
    for login in issue.pull.requested_reviewers:
        if login not in latest:
            people.append((login, "Awaiting requested review"))
    rows = "".join(
        f'<div class="who">{_avatar(login, _is_bot(world, login), True)}'
        f'{_who(world, login)}<span class="neutral">· {note}</span></div>'
        for login, note in people
    )
    labels = " ".join(f'<span class="label">{escape(n)}</span>' for n in issue.labels)
    return (
        f"<aside><section><h3>Reviewers</h3>{rows or 'No reviews'}</section>"
        f"<section><h3>Labels</h3>{labels or 'None yet'}</section>"
        f"<section><h3>Assignees</h3>No one assigned</section></aside>"
    )


def pull_page(sim: GitHubSim, owner: str, name: str, number: int) -> str | None:
    """The page for pull request ``number``; None when there is no such pull request."""
    world = sim.world
    repo = world.find_repo(owner, name)
    issue = repo.issues.get(number) if repo is not None else None
    if repo is None or issue is None or issue.pull is None:
        return None
    pull = issue.pull
    files = repo.git.diff(pull.base_sha, pull.head_sha)
    commits = repo.git.count_commits(pull.base_sha, pull.head_sha)
    reviews = [world.reviews[i] for i in pull.reviews if i in world.reviews]
    review_comments = [world.review_comments[i] for i in pull.review_comments]
    runs = [r for r in world.check_runs.values() if r.repo == repo.full_name]
    head_runs = [r for r in runs if r.head_sha == pull.head_sha]

    threads: dict[int, list[ReviewComment]] = {}
    for c in sorted(review_comments, key=lambda c: (c.created_at, c.id)):
        threads.setdefault(c.in_reply_to or c.id, []).append(c)
    by_review: dict[int | None, list[list[ReviewComment]]] = {}
    for root_id, thread in threads.items():
        root = world.review_comments[root_id] if root_id in world.review_comments else thread[0]
        by_review.setdefault(root.review_id, []).append(thread)

    events: list[tuple[str, int, str]] = []
    for cid in issue.comments:
        c = world.comments[cid]
        events.append(
            (
                c.created_at,
                c.id,
                _comment_box(world, repo, c.author, "commented", c.created_at, c.body, False),
            )
        )
    for review in reviews:
        events.append(
            (
                review.submitted_at,
                review.id,
                _review_box(world, repo, review, by_review.get(review.id, [])),
            )
        )
    events.sort(key=lambda e: (e[0], e[1]))

    if issue.state == "closed":
        state, state_cls = "Closed", "closed"
    elif pull.draft:
        state, state_cls = "Draft", "draft"
    else:
        state, state_cls = "Open", "open"
    adds = sum(f.additions for f in files)
    dels = sum(f.deletions for f in files)
    title = escape(issue.title)
    opening = _comment_box(
        world, repo, issue.author, "opened this", issue.created_at, issue.body, True
    )
    tabs = (
        f'<span class="on">Conversation <span class="count">{len(issue.comments)}</span></span>'
        f'<span>Commits <span class="count">{commits}</span></span>'
        f'<span>Checks <span class="count">{len(runs)}</span></span>'
        f'<span>Files changed <span class="count">{len(files)}</span></span>'
        f'<span class="diffstat"><span class="add">+{adds}</span> '
        f'<span class="del">−{dels}</span></span>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} by {escape(issue.author)} · Pull Request #{number} · {escape(repo.full_name)}</title>
<style>{CSS}</style></head>
<body>
<header class="top"><div class="repo">{escape(repo.owner)} / <strong>{escape(repo.name)}</strong>
</div><nav class="repo-tabs"><span>Code</span><span>Issues</span>
<span class="on">Pull requests</span><span>Actions</span></nav></header>
<main>
<h1 class="title">{title} <span class="num">#{number}</span></h1>
<div class="meta"><span class="state {state_cls}">{state}</span>
<span><strong>{escape(issue.author)}</strong> wants to merge {commits}
commit{"s" if commits != 1 else ""} into <span class="branch">{escape(pull.base_ref)}</span>
from <span class="branch">{escape(pull.head_ref)}</span></span></div>
<nav class="pr-tabs">{tabs}</nav>
<div class="layout"><div class="timeline">
{opening}
{"".join(html for _, _, html in events)}
{_checks(world, head_runs)}
</div>
{_sidebar(world, repo, issue, reviews)}
</div></main></body></html>
"""


_NOT_FOUND = (
    "<!doctype html><html><head><title>Page not found · GitHub</title></head>"
    "<body><h1>404</h1><p>This is not the web page you are looking for.</p></body></html>"
)


def html_routes(sim: GitHubSim) -> list[Route]:
    async def pull(request: Request) -> Response:
        owner, name = request.path_params["owner"], request.path_params["name"]
        raw = request.path_params["number"]
        if not raw.isdigit():
            return HTMLResponse(_NOT_FOUND, status_code=404)

        def render() -> str | None:
            with sim.world.lock:
                return pull_page(sim, owner, name, int(raw))

        try:
            page = await run_in_threadpool(render)
        except Exception as exc:  # a simulator bug: answer 500 and keep it for the test
            log.exception("simulator error on the page of %s/%s#%s", owner, name, raw)
            sim.errors.append(f"GET /{owner}/{name}/pull/{raw}: {type(exc).__name__}: {exc}")
            return HTMLResponse("simulator error", status_code=500)
        if page is None:
            return HTMLResponse(_NOT_FOUND, status_code=404)
        return HTMLResponse(page)

    return [Route("/{owner}/{name}/pull/{number}", pull, methods=["GET"])]
