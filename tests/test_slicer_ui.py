"""The RadEdit module's Designer file against its code, without Qt.

Every ``self.ui.<name>`` in ``RadEdit.py`` must be a widget of
``Resources/UI/RadEdit.ui`` whose class offers what the code does with it
(properties, methods, signals: ``tests/slicer_ui_check.py`` holds the table,
from the Qt, CTK and Slicer headers), every ``SlicerParameterName`` must be a
field of the parameter node that ``parameterNodeWrapper`` can bind to that
widget class, and the file's own connections and custom widget declarations
must hold.  The checker is itself checked: renamed widgets, changed classes
and mistyped members in copies of both files must be reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from slicer_ui_check import WIDGET_API, check, members, read_code, read_ui

MODULE = Path(__file__).resolve().parents[1] / "RadEditSlicer"
UI = MODULE / "Resources" / "UI" / "RadEdit.ui"
CODE = MODULE / "RadEdit.py"


def test_every_widget_the_code_uses_is_in_the_ui_with_a_class_that_fits():
    assert check(UI, CODE) == []


def test_the_code_reader_follows_widgets_and_ignores_comments_and_strings():
    uses = read_code(CODE.read_text())

    def done(name):
        return {(u.kind, u.member) for u in uses.widgets[name]}

    assert ("signal", "currentPathChanged(QString)") in done("pythonPathLineEdit")
    assert {("property", "currentPath"), ("property", "filters")} <= done("exportDirectoryLineEdit")
    assert {("method", "itemData"), ("method", "setCurrentIndex"), ("signal", "activated(int)")} <= done("presetComboBox")
    # Through `for which, widget in zip(..., (self.ui.editSegmentsList, ...))` and `self._checked(widget)`.
    for name in ("editSegmentsList", "keepSegmentsList"):
        assert {("property", "count"), ("method", "item"), ("method", "clear"), ("method", "addItem")} <= done(name)
    # `uiWidget = slicer.util.loadUI(...)`: the file's top widget.
    assert ("method", "setMRMLScene") in {(u.kind, u.member) for u in uses.root}
    # The walk misses no name the text has outside comments (no comment in RadEdit.py names a widget).
    named = {m for line in CODE.read_text().splitlines() for m in re.findall(r"self\.ui\.(\w+)", line.split("#")[0])}
    assert set(uses.widgets) == named

    other = read_code(
        "class W:\n"
        "    def f(self):\n"
        "        # self.ui.ghost.value\n"
        "        text = 'self.ui.ghost2.text'\n"
        "        self.ui.button.toggled.connect(self.f)\n"
        "        w = self.ui.box\n"
        "        w.setValue(w.value + 1)\n"
    )
    assert set(other.widgets) == {"button", "box"}
    assert ("signal-name", "toggled") in {(u.kind, u.member) for u in other.widgets["button"]}
    assert {("method", "setValue"), ("property", "value")} <= {(u.kind, u.member) for u in other.widgets["box"]}


def test_the_api_table_is_consistent():
    ui = read_ui(UI)
    for name, api in WIDGET_API.items():
        assert api.base is None or api.base in WIDGET_API, name
        assert api.source, name
        properties, methods, _ = members(name)
        assert not properties & methods, (name, properties & methods)  # one name, one way to use it
    for widget in ui.widgets.values():
        if not WIDGET_API[widget.cls].qt:
            assert ui.custom_widgets[widget.cls] == "QWidget"


def _problems(tmp_path, ui_edit=None, code_edit=None) -> list[str]:
    """Problems of copies of the .ui and the code, each with one substitution (which must apply)."""
    ui_text, code_text = UI.read_text(), CODE.read_text()
    for edit, attr in ((ui_edit, "ui"), (code_edit, "code")):
        if edit is None:
            continue
        old, new = edit
        text = ui_text if attr == "ui" else code_text
        assert len(re.findall(old, text)) == 1, f"{old!r} must occur once in the {attr} file"
        text = re.sub(old, new, text)
        if attr == "ui":
            ui_text = text
        else:
            code_text = text
    (tmp_path / "RadEdit.ui").write_text(ui_text)
    (tmp_path / "RadEdit.py").write_text(code_text)
    return check(tmp_path / "RadEdit.ui", tmp_path / "RadEdit.py")


UI_MUTATIONS = {
    "renamed widget": (
        (r'name="pythonPathLineEdit"', 'name="pythonPathEdit"'),
        ["self.ui.pythonPathLineEdit: no widget named 'pythonPathLineEdit' in RadEdit.ui"],
    ),
    "path edit made a line edit": (
        (r'class="ctkPathLineEdit" name="pythonPathLineEdit"', 'class="QLineEdit" name="pythonPathLineEdit"'),
        [
            "self.ui.pythonPathLineEdit.currentPath: QLineEdit has no property 'currentPath'",
            "self.ui.pythonPathLineEdit.filters: QLineEdit has no property 'filters'",
            "self.ui.pythonPathLineEdit: QLineEdit has no signal currentPathChanged(QString)",
        ],
    ),
    "list made a combo box (seen through the loop variable)": (
        (r'class="QListWidget" name="keepSegmentsList"', 'class="QComboBox" name="keepSegmentsList"'),
        [
            "self.ui.keepSegmentsList.item(): QComboBox has no method 'item'",
            "self.ui.keepSegmentsList: QComboBox has no signal itemChanged(QListWidgetItem*)",
        ],
    ),
    "spin box made a line edit": (
        (r'class="QSpinBox" name="stepsSpinBox"', 'class="QLineEdit" name="stepsSpinBox"'),
        ["stepsSpinBox is a QLineEdit; parameterNodeWrapper cannot bind it to steps (int)"],
    ),
    "check box made a radio button": (
        (r'class="QCheckBox" name="trustRemoteCodeCheckBox"', 'class="QRadioButton" name="trustRemoteCodeCheckBox"'),
        ["trustRemoteCodeCheckBox is a QRadioButton; parameterNodeWrapper cannot bind it to trustRemoteCode (bool)"],
    ),
    "mistyped parameter name": (
        (r"<string>skipRatio</string>", "<string>skip_ratio</string>"),
        ["skipRatioSpinBox is bound to 'skip_ratio', which the parameter node of RadEdit.py does not have"],
    ),
    "two widgets bound to one parameter": (
        (r"<string>model</string>", "<string>prompt</string>"),
        ["promptLineEdit and modelLineEdit are both bound to parameter 'prompt'"],
    ),
    "custom widget not declared": (
        (r"(?s)<customwidget>\s*<class>ctkPathLineEdit</class>.*?</customwidget>", ""),
        ["ctkPathLineEdit (exportDirectoryLineEdit) is not declared under <customwidgets>"],
    ),
    "top widget without a scene": (
        (r'<widget class="qMRMLWidget" name="RadEdit">', '<widget class="QWidget" name="RadEdit">'),
        [
            "the loaded RadEdit.ui (QWidget).setMRMLScene(): QWidget has no method 'setMRMLScene'",
            "RadEdit (QWidget) has no signal mrmlSceneChanged(vtkMRMLScene*)",
        ],
    ),
    "duplicate name": (
        (r'name="statusLabel"', 'name="masksLabel"'),
        ["two widgets are named 'masksLabel'", "self.ui.statusLabel: no widget named 'statusLabel'"],
    ),
    "class unknown to the table": (
        (r'class="QLabel" name="environmentLabel"', 'class="QTextBrowser" name="environmentLabel"'),
        ["environmentLabel is a QTextBrowser, a class the widget API table does not know"],
    ),
    "connection to a renamed receiver": (
        (r"<receiver>resultSelector</receiver>", "<receiver>resultSelectr</receiver>"),
        ["connection receiver 'resultSelectr' is not a widget of the file"],
    ),
}


@pytest.mark.parametrize("mutation", list(UI_MUTATIONS), ids=list(UI_MUTATIONS))
def test_a_changed_ui_file_is_reported(tmp_path, mutation):
    edit, expected = UI_MUTATIONS[mutation]
    problems = _problems(tmp_path, ui_edit=edit)
    for message in expected:
        assert any(message in p for p in problems), (message, problems)


CODE_MUTATIONS = {
    "mistyped widget": (
        (r"self\.ui\.statusLabel\.text = _\(outcome", "self.ui.statuslabel.text = _(outcome"),
        "self.ui.statuslabel: no widget named 'statuslabel' in RadEdit.ui",
    ),
    "mistyped signal": (
        (r'externalPythonRadioButton\.connect\("toggled\(bool\)"', 'externalPythonRadioButton.connect("toggle(bool)"'),
        "self.ui.externalPythonRadioButton: QRadioButton has no signal toggle(bool)",
    ),
    "mistyped property": (
        (r"exportDirectoryLineEdit\.currentPath\.strip", "exportDirectoryLineEdit.currentpath.strip"),
        "self.ui.exportDirectoryLineEdit.currentpath: ctkPathLineEdit has no property 'currentpath'",
    ),
    "mistyped method (through the helper's parameter)": (
        (r"widget\.item\(row\)\.checkState\(\)", "widget.itemAt(row).checkState()"),
        "self.ui.editSegmentsList.itemAt(): QListWidget has no method 'itemAt'",
    ),
    "property called": (
        (r"self\.ui\.cancelButton\.enabled = False", "self.ui.cancelButton.enabled(False)"),
        "self.ui.cancelButton.enabled() calls QPushButton's property 'enabled': read or assign it",
    ),
    "method read as a property": (
        (r"self\.ui\.progressBar\.hide\(\)\n        self\.ui\.cancelButton", "self.ui.progressBar.hide\n        self.ui.cancelButton"),
        "self.ui.progressBar.hide is a method of QProgressBar: call it",
    ),
}


@pytest.mark.parametrize("mutation", list(CODE_MUTATIONS), ids=list(CODE_MUTATIONS))
def test_a_changed_module_is_reported(tmp_path, mutation):
    edit, expected = CODE_MUTATIONS[mutation]
    problems = _problems(tmp_path, code_edit=edit)
    assert any(expected in p for p in problems), (expected, problems)
