"""The one stylesheet and page frame of every HTML page pact-bot serves.

Served as a file (`/static/pact.css`, with the viewer's small script `/static/viewer.js`) so
the run viewer's pages can forbid inline scripts and styles (Content-Security-Policy): the
transcript is model output, and a slip in escaping must still not run anything.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CALLBACK_PATH = "/auth/callback"

CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
        --ok: #1a7f37; --bad: #cf222e; --bg2: #f6f8fa; --link: #0969da; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       max-width: 60rem; margin: 0 auto; padding: 0 1rem 3rem; }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.2rem; align-items: baseline;
             padding: .8rem 0; border-bottom: 1px solid var(--line); margin-bottom: 1rem; }
header.top .brand { font-weight: 600; color: var(--fg); }
header.top .who { margin-left: auto; color: var(--muted); }
header.top form { display: inline; }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; }
code, pre { font: .85rem/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--bg2); padding: .1rem .3rem; border-radius: 4px; }
pre { background: var(--bg2); padding: .6rem .8rem; border-radius: 6px; overflow-x: auto;
      white-space: pre-wrap; overflow-wrap: anywhere; margin: .4rem 0; }
button { font: inherit; padding: .5rem 1.1rem; border-radius: 6px; border: 1px solid #1f883d;
         background: #1f883d; color: #fff; cursor: pointer; }
button.link { background: none; border: none; color: var(--link); padding: 0; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; padding: .6rem 1rem; border-radius: 6px; }
.err { background: #ffebe9; border: 1px solid #ff8182; padding: .6rem 1rem; border-radius: 6px; }
.muted { color: var(--muted); }
ul.checks { list-style: none; padding: 0; }
ul.checks li { padding: .45rem 0; border-bottom: 1px solid var(--line); }
.mark { display: inline-block; width: 1.4rem; font-weight: 700; }
.ok .mark { color: var(--ok); } .bad .mark { color: var(--bad); }
.fix { display: block; margin-left: 1.4rem; color: var(--muted); font-size: .9rem; }
table.jobs { width: 100%; border-collapse: collapse; font-size: .95rem; }
table.jobs th, table.jobs td { text-align: left; padding: .45rem .4rem;
                               border-bottom: 1px solid var(--line); vertical-align: top; }
table.jobs td.num { text-align: right; white-space: nowrap; }
@media (max-width: 40rem) { table.jobs .wide { display: none; } }
.state { display: inline-block; padding: .05rem .55rem; border-radius: 2em; font-size: .85rem;
         background: var(--bg2); border: 1px solid var(--line); }
.state.running { background: #ddf4ff; border-color: #54aeff; }
.state.succeeded { background: #dafbe1; border-color: #4ac26b; }
.state.failed { background: #ffebe9; border-color: #ff8182; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
ol.timeline { padding-left: 1.2rem; } ol.timeline li { margin: .1rem 0; }
.entry { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem;
         margin: .6rem 0; }
.entry > .head { color: var(--muted); font-size: .85rem; }
.entry.assistant { border-left: 4px solid #8250df; }
.entry.user { border-left: 4px solid #54aeff; }
.entry.system { border-left: 4px solid var(--line); }
.entry.error { border-left: 4px solid var(--bad); }
.say { white-space: pre-wrap; overflow-wrap: anywhere; margin: .4rem 0; }
details > summary { cursor: pointer; overflow-wrap: anywhere; }
.tool { margin: .4rem 0; }
.tool.error > summary { color: var(--bad); }
.diff .add { background: #dafbe1; display: block; }
.diff .del { background: #ffebe9; display: block; }
.diff .hunk { color: #8250df; display: block; }
#live { font-size: .85rem; color: var(--muted); }
"""

# Appends each server-rendered (already escaped) transcript entry the stream sends; the
# stream's `state` event updates the state badge, `end` closes it.
VIEWER_JS = """
(function () {
  var box = document.getElementById("transcript");
  if (!box || !box.dataset.events || !window.EventSource) return;
  var live = document.getElementById("live");
  var src = new EventSource(box.dataset.events);
  src.addEventListener("entry", function (e) {
    box.insertAdjacentHTML("beforeend", e.data);
  });
  src.addEventListener("state", function (e) {
    var badge = document.getElementById("state");
    if (badge) { badge.textContent = e.data; badge.className = "state " + e.data; }
  });
  src.addEventListener("end", function () {
    src.close();
    if (live) live.textContent = "The job has finished.";
  });
  src.onerror = function () { if (live) live.textContent = "Reconnecting…"; };
  src.onopen = function () { if (live) live.textContent = "Live: new turns appear below."; };
})();
"""

# Every response of the run viewer: nothing inline runs, nothing is framed or sent elsewhere.
VIEWER_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def layout(title: str, body: str, *, nav: str = "") -> str:
    """A whole page: `title` is text (escaped here), `body` and `nav` are HTML."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<link rel=stylesheet href='/static/pact.css'></head><body>"
        "<header class=top><a class=brand href='/'>pact-bot</a>"
        f"<a href='/jobs'>Jobs</a>{nav}</header>"
        f"<main><h1>{html.escape(title)}</h1>\n{body}</main></body></html>"
    )


async def stylesheet(request: Request) -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


async def viewer_script(request: Request) -> Response:
    return Response(
        VIEWER_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


routes = [
    Route("/static/pact.css", stylesheet, methods=["GET"]),
    Route("/static/viewer.js", viewer_script, methods=["GET"]),
]
