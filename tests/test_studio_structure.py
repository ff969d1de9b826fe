"""The studio's shape: every session key lives in ``studio/session.py``. No other file of the studio (``app.py``,
``studio/``, ``pages/``) spells a key of ``st.session_state`` — by indexing it, by one of its methods, by ``in``,
as an attribute or as a widget's ``key=`` that names a session slot."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSION = ROOT / "studio" / "session.py"
_METHODS = {"get", "pop", "setdefault", "update", "keys", "values", "items", "clear", "to_dict", "__contains__",
            "__getitem__", "__setitem__", "__delitem__"}


def _is_state(node: ast.AST) -> bool:
    """``st.session_state`` (or any ``….session_state`` / a bare ``session_state``)."""
    return (isinstance(node, ast.Attribute) and node.attr == "session_state") or (
        isinstance(node, ast.Name) and node.id == "session_state")


def _literal(node: ast.AST | None) -> bool:
    """A string written in the code: a literal or an f-string."""
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def bare_session_keys(source: str, slot_keys: frozenset[str] = frozenset()) -> list[str]:
    """``line: code`` of each place in ``source`` that spells a session key itself; ``slot_keys``: the keys of
    the session's slots, which a widget's ``key=`` must take from ``studio.session``, not spell again."""
    found = []
    for node in ast.walk(ast.parse(source)):
        hit = False
        if isinstance(node, ast.Subscript) and _is_state(node.value):
            hit = _literal(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_state(node.func.value):
            hit = bool(node.args and _literal(node.args[0])) or (node.func.attr == "update" and (
                bool(node.keywords) or any(isinstance(a, ast.Dict) and any(map(_literal, a.keys)) for a in node.args)))
        elif isinstance(node, ast.Attribute) and _is_state(node.value):
            hit = node.attr not in _METHODS  # st.session_state.selection: a key spelled as an attribute
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            hit = _literal(node.left) and any(map(_is_state, node.comparators))
        elif isinstance(node, ast.keyword) and node.arg == "key" and isinstance(node.value, ast.Constant):
            hit = node.value.value in slot_keys
        if hit:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _studio_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "studio").glob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]


def test_only_studio_session_spells_a_session_key() -> None:
    from studio.session import slots

    keys = frozenset(slots())
    assert {"selection", "data_folder", "views", "left_index", "w_backbone"} <= keys  # the slots are seen
    files = [p for p in _studio_files() if p != SESSION]
    assert len(files) > 15 and SESSION.is_file()
    spelled = {str(p.relative_to(ROOT)): found for p in files if (found := bare_session_keys(p.read_text(), keys))}
    assert not spelled, f"session keys spelled outside studio/session.py (use a Slot there): {spelled}"


def test_the_finder_finds_each_way_of_spelling_a_key() -> None:
    """Each form the rule forbids is found (the test above would fail on it); keys from a slot are not."""
    spelled = [
        'st.session_state["selection"]',
        'st.session_state["selection"] = 1',
        'st.session_state[f"tags_{i}"] = []',
        'st.session_state.get("device", "auto")',
        'st.session_state.pop("switch_to", None)',
        'st.session_state.setdefault("views", {})',
        '"views" in st.session_state',
        'if "switch_to" not in st.session_state: pass',
        'st.session_state.update(w_split="validation")',
        'st.session_state.update({"w_split": "validation"})',
        'st.session_state.selection',
        'state = st.session_state.map_focus',
        'st.selectbox("Left", [], key="left_index")',
    ]
    for line in spelled:
        assert bare_session_keys("import streamlit as st\n" + line, frozenset({"left_index"})), line
    allowed = [
        "st.session_state[slot.key]",
        "st.session_state.get(key)",
        "session.SELECTION.get()",
        "key in st.session_state",
        'st.selectbox("A", [], key="compare_a")',  # a widget whose value is only read from its return value
        'st.selectbox("Left", [], key=session.LEFT_INDEX.key)',
        'x = {"views": 1}["views"]',
    ]
    for line in allowed:
        assert not bare_session_keys("import streamlit as st\n" + line, frozenset({"left_index"})), line
