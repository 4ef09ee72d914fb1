"""The text editor reproduces the reference tool's wording and never leaves the worktree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pact_bot.agent.paths import PathError, resolve
from pact_bot.agent.tools import build_tools
from pact_bot.agent.tools.editor import (
    TRUNCATED_MESSAGE,
    VIEW_MAX_CHARACTERS,
    EditorTool,
    ToolError,
)

EDIT = "str_replace_based_edit_tool"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    (wt / "src" / "pkg").mkdir(parents=True)
    (wt / ".git").mkdir()
    (wt / ".git" / "config").write_text("[core]\n")
    (wt / ".hidden").mkdir()
    (wt / ".hidden" / "x").write_text("x")
    (wt / "app.py").write_text("a = 1\nb = 2\nc = 3\n")
    (wt / "src" / "pkg" / "mod.py").write_text("x\n")
    (wt / "src" / "pkg" / "deep").mkdir()
    (wt / "src" / "pkg" / "deep" / "too_deep.py").write_text("")
    return wt


def ed(repo: Path) -> EditorTool:
    return EditorTool(repo)


def test_view_file_numbers_lines_like_cat_n(repo: Path) -> None:
    out = ed(repo).run({"command": "view", "path": "/workspace/app.py"})
    assert out == (
        "Here's the result of running `cat -n` on /workspace/app.py:\n"
        "     1\ta = 1\n     2\tb = 2\n     3\tc = 3\n     4\t\n"
    )


def test_view_range_and_to_end(repo: Path) -> None:
    e = ed(repo)
    out = e.run({"command": "view", "path": "/workspace/app.py", "view_range": [2, 3]})
    assert out.endswith("     2\tb = 2\n     3\tc = 3\n")
    out = e.run({"command": "view", "path": "/workspace/app.py", "view_range": [3, -1]})
    assert out.endswith("     3\tc = 3\n     4\t\n")


@pytest.mark.parametrize(
    ("view_range", "message"),
    [
        ([0, 2], "Invalid `view_range`: [0, 2]. Its first element `0` should be within the range "
         "of lines of the file: [1, 4]"),
        ([1, 9], "Invalid `view_range`: [1, 9]. Its second element `9` should be smaller than the "
         "number of lines in the file: `4`"),
        ([3, 2], "Invalid `view_range`: [3, 2]. Its second element `2` should be larger or equal "
         "than its first `3`"),
        ([1], "Invalid `view_range`. It should be a list of two integers."),
    ],
)  # fmt: skip
def test_invalid_view_range(repo: Path, view_range: list[int], message: str) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "view", "path": "/workspace/app.py", "view_range": view_range})
    assert str(err.value) == message


def test_view_directory_two_levels_without_hidden(repo: Path) -> None:
    out = ed(repo).run({"command": "view", "path": "/workspace"})
    assert out == (
        "Here's the files and directories up to 2 levels deep in /workspace, excluding hidden "
        "items:\n/workspace\n/workspace/app.py\n/workspace/src\n/workspace/src/pkg\n\n"
    )
    with pytest.raises(ToolError, match="not allowed when `path` points to a directory"):
        ed(repo).run({"command": "view", "path": "/workspace/src", "view_range": [1, 2]})


def test_view_tabs_expanded_and_a_long_single_line_clipped(repo: Path) -> None:
    (repo / "tab.txt").write_text("\tx")
    assert ed(repo).run({"command": "view", "path": "tab.txt"}).endswith("     1\t        x\n")
    (repo / "big.txt").write_text("y" * (VIEW_MAX_CHARACTERS + 4_000))
    out = ed(repo).run({"command": "view", "path": "/workspace/big.txt"})
    assert out == (
        "Here's the result of running `cat -n` on /workspace/big.txt:\n"
        f"     1\t{'y' * VIEW_MAX_CHARACTERS}{TRUNCATED_MESSAGE}\n"
    )
    assert TRUNCATED_MESSAGE.startswith("<response clipped><NOTE>To save on context")
    small = EditorTool(repo, max_characters=100)
    assert small.definition() == {
        "type": "text_editor_20250728",
        "name": EDIT,
        "max_characters": 100,
    }
    assert f"{'y' * 100}{TRUNCATED_MESSAGE}" in small.run({"command": "view", "path": "big.txt"})


def module_text(lines: int) -> str:
    return "".join(f"def function_{i}(x: int) -> int:  # {'pad ' * 5}\n" for i in range(lines))


def test_view_returns_a_48k_file_whole_in_one_call(repo: Path) -> None:
    """The reference clips at 16,000 characters: such a module took four views."""
    text = module_text(1000)
    assert 45_000 < len(text) < VIEW_MAX_CHARACTERS
    (repo / "mod.py").write_text(text)
    editor = ed(repo)
    assert editor.definition()["max_characters"] == VIEW_MAX_CHARACTERS
    out = editor.run({"command": "view", "path": "/workspace/mod.py"})
    assert "<response clipped>" not in out
    assert "  1000\tdef function_999(x: int)" in out
    assert "  1001\t\n" in out  # the final newline's empty line, as `cat -n` style shows it


def test_clipped_view_ends_on_a_line_and_says_how_to_see_the_rest(repo: Path) -> None:
    text = module_text(3000)
    (repo / "huge.py").write_text(text)
    out = ed(repo).run({"command": "view", "path": "/workspace/huge.py"})
    body, note = out.split("<response clipped>")
    last = cat_lines(body)
    assert max(last) < 3001
    # every shown line is whole
    assert all(
        t == f"def function_{n - 1}(x: int) -> int:  # {'pad ' * 5}" for n, t in last.items()
    )
    assert len("\n".join(last.values())) <= VIEW_MAX_CHARACTERS
    n = max(last)
    assert f"lines 1-{n} of 3001" in note and f"[{n + 1}, " in note
    # the note's advice works: the next range picks up where the view stopped
    rest = ed(repo).run({"command": "view", "path": "huge.py", "view_range": [n + 1, 3001]})
    assert "<response clipped>" not in rest
    assert min(cat_lines(rest)) == n + 1


def cat_lines(out: str) -> dict[int, str]:
    lines = {}
    for raw in out.splitlines()[1:]:
        num, _, textpart = raw.partition("\t")
        if num.strip().isdigit():
            lines[int(num)] = textpart
    return lines


def test_missing_path(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "view", "path": "/workspace/nope.py"})
    assert str(err.value) == (
        "The path /workspace/nope.py does not exist. Please provide a valid path."
    )


def test_create_new_file_with_parents(repo: Path) -> None:
    e = ed(repo)
    out = e.run({"command": "create", "path": "/workspace/new/dir/f.py", "file_text": "hi\n"})
    assert out == "File created successfully at: /workspace/new/dir/f.py"
    assert (repo / "new" / "dir" / "f.py").read_text() == "hi\n"
    assert e.touched == {repo.resolve() / "new/dir/f.py"}


def test_create_refuses_existing_file(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "create", "path": "/workspace/app.py", "file_text": "x"})
    assert str(err.value) == (
        "File already exists at: /workspace/app.py. Cannot overwrite files using command `create`."
    )
    assert (repo / "app.py").read_text() == "a = 1\nb = 2\nc = 3\n"
    with pytest.raises(ToolError, match="Parameter `file_text` is required for command: create"):
        ed(repo).run({"command": "create", "path": "/workspace/z.py"})


def test_str_replace_ok_with_snippet(repo: Path) -> None:
    lines = "".join(f"line{i}\n" for i in range(1, 13))
    (repo / "f.txt").write_text(lines)
    out = ed(repo).run(
        {"command": "str_replace", "path": "/workspace/f.txt", "old_str": "line6", "new_str": "SIX"}
    )
    assert out == (
        "The file /workspace/f.txt has been edited. Here's the result of running `cat -n` on a "
        "snippet of /workspace/f.txt:\n"
        "     2\tline2\n     3\tline3\n     4\tline4\n     5\tline5\n     6\tSIX\n"
        "     7\tline7\n     8\tline8\n     9\tline9\n    10\tline10\n"
        "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )
    assert "SIX\nline7" in (repo / "f.txt").read_text()


def test_str_replace_not_found(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "str_replace", "path": "/workspace/app.py", "old_str": "zzz"})
    assert str(err.value) == (
        "No replacement was performed, old_str `zzz` did not appear verbatim in /workspace/app.py."
    )


def test_str_replace_multiple_occurrences_lists_lines(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run(
            {
                "command": "str_replace",
                "path": "/workspace/app.py",
                "old_str": " = ",
                "new_str": "=",
            }
        )
    assert str(err.value) == (
        "No replacement was performed. Multiple occurrences of old_str ` = ` in lines [1, 2, 3]. "
        "Please ensure it is unique"
    )
    assert (repo / "app.py").read_text() == "a = 1\nb = 2\nc = 3\n"


def test_str_replace_without_new_str_deletes(repo: Path) -> None:
    ed(repo).run({"command": "str_replace", "path": "/workspace/app.py", "old_str": "b = 2\n"})
    assert (repo / "app.py").read_text() == "a = 1\nc = 3\n"


def test_str_replace_matches_tab_expanded_text_like_the_reference(repo: Path) -> None:
    (repo / "t.py").write_text("if x:\n\treturn 1\n")
    ed(repo).run(
        {
            "command": "str_replace",
            "path": "/workspace/t.py",
            "old_str": "        return 1",
            "new_str": "        return 2",
        }
    )
    assert (repo / "t.py").read_text() == "if x:\n        return 2\n"


def test_str_replace_keeps_tabs_when_verbatim(repo: Path) -> None:
    (repo / "Makefile").write_text("all:\n\techo one\n\techo two\n")
    ed(repo).run({"command": "str_replace", "path": "Makefile", "old_str": "one", "new_str": "uno"})
    assert (repo / "Makefile").read_text() == "all:\n\techo uno\n\techo two\n"


@pytest.mark.parametrize("key", ["insert_text", "new_str"])
def test_insert_accepts_insert_text_and_new_str(repo: Path, key: str) -> None:
    out = ed(repo).run(
        {"command": "insert", "path": "/workspace/app.py", "insert_line": 1, key: "NEW"}
    )
    assert (repo / "app.py").read_text() == "a = 1\nNEW\nb = 2\nc = 3\n"
    assert out == (
        "The file /workspace/app.py has been edited. Here's the result of running `cat -n` on a "
        "snippet of the edited file:\n"
        "     1\ta = 1\n     2\tNEW\n     3\tb = 2\n     4\tc = 3\n     5\t\n"
        "Review the changes and make sure they are as expected (correct indentation, no duplicate "
        "lines, etc). Edit the file again if necessary."
    )


def test_insert_invalid_line(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run(
            {"command": "insert", "path": "/workspace/app.py", "insert_line": 9, "insert_text": "x"}
        )
    assert str(err.value) == (
        "Invalid `insert_line` parameter: 9. It should be within the range of lines of the file: "
        "[0, 4]"
    )
    with pytest.raises(ToolError, match="Parameter `insert_line` is required"):
        ed(repo).run({"command": "insert", "path": "/workspace/app.py", "insert_text": "x"})


def test_directory_only_viewable_and_unknown_command(repo: Path) -> None:
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "str_replace", "path": "/workspace/src", "old_str": "x"})
    assert str(err.value) == (
        "The path /workspace/src is a directory and only the `view` command can be used on "
        "directories"
    )
    with pytest.raises(ToolError) as err:
        ed(repo).run({"command": "undo_edit", "path": "/workspace/app.py"})
    assert str(err.value) == (
        f"Unrecognized command undo_edit. The allowed commands for the {EDIT} tool are: view, "
        "create, str_replace, insert"
    )


def test_relative_paths_resolve_into_the_worktree(repo: Path) -> None:
    out = ed(repo).run({"command": "view", "path": "src/pkg/mod.py"})
    assert out.startswith("Here's the result of running `cat -n` on /workspace/src/pkg/mod.py:")


@pytest.mark.parametrize(
    "bad",
    [
        "../outside.txt",
        "/workspace/../outside.txt",
        "/etc/passwd",
        "/workspace/.git/config",
        ".git/config",
        "/workspace/src/../.git/HEAD",
        "/workspacefoo/x",
    ],
)
def test_escapes_are_refused(repo: Path, bad: str) -> None:
    (repo.parent / "outside.txt").write_text("secret")
    with pytest.raises(PathError):
        resolve(repo, bad)
    for command in ("view", "create"):
        with pytest.raises(PathError):
            ed(repo).run({"command": command, "path": bad, "file_text": "pwned"})
    assert (repo.parent / "outside.txt").read_text() == "secret"
    assert (repo / ".git" / "config").read_text() == "[core]\n"


def test_symlinks_pointing_out_are_not_followed(repo: Path) -> None:
    outside = repo.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, repo / "link")
    os.symlink(outside / "secret.txt", repo / "file_link")
    os.symlink(repo / ".git", repo / "gitlink")
    e = ed(repo)
    with pytest.raises(PathError, match="outside the repository"):
        e.run({"command": "view", "path": "/workspace/link/secret.txt"})
    with pytest.raises(PathError):
        e.run({"command": "str_replace", "path": "/workspace/file_link", "old_str": "secret"})
    with pytest.raises(PathError):
        e.run({"command": "create", "path": "/workspace/link/new.txt", "file_text": "x"})
    with pytest.raises(PathError, match=r"\.git"):
        e.run({"command": "view", "path": "/workspace/gitlink/config"})
    assert not (outside / "new.txt").exists()
    assert (outside / "secret.txt").read_text() == "secret"


def test_symlink_inside_the_worktree_is_fine(repo: Path) -> None:
    os.symlink(repo / "app.py", repo / "alias.py")
    assert "a = 1" in ed(repo).run({"command": "view", "path": "/workspace/alias.py"})


async def test_registry_turns_refusals_into_error_results(repo: Path) -> None:
    tools = build_tools(repo, sandbox=False)
    assert [d["name"] for d in tools.definitions] == [EDIT, "grep", "glob"]
    res = await tools.run(EDIT, {"command": "view", "path": "/etc/passwd"})
    assert res.is_error and "outside the repository" in res.content
    res = await tools.run(EDIT, {"command": "create", "path": "docs/x.md", "file_text": "# x\n"})
    assert not res.is_error
    res = await tools.run("nope", {})
    assert res.is_error and "Unknown tool nope" in res.content
    assert tools.files_touched == ["docs/x.md"]
    assert [c.summary for c in tools.calls] == [
        "view /etc/passwd",
        "create docs/x.md",
        "nope",
    ]
    assert [c.is_error for c in tools.calls] == [True, False, True]


def test_symlink_loop_is_an_error_not_a_crash(repo: Path) -> None:
    os.symlink(repo / "loop_b", repo / "loop_a")
    os.symlink(repo / "loop_a", repo / "loop_b")
    with pytest.raises(PathError):
        ed(repo).run({"command": "view", "path": "/workspace/loop_a"})
