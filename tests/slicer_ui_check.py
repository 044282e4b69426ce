"""Does a scripted module's Qt Designer file provide every widget its code uses?

Slicer loads ``Resources/UI/<module>.ui`` at run time
(``slicer.util.loadUI``) and ``slicer.util.childWidgetVariables`` makes each
named widget an attribute of ``self.ui``; a renamed widget or one of another
class only fails when that line runs inside Slicer.  This reads both sides
without Qt:

1. the ``.ui`` file (Qt Designer XML, ``xml.etree.ElementTree``): widget
   names and classes, custom widget declarations, signal/slot connections,
   and the ``SlicerParameterName`` dynamic properties that
   ``parameterNodeWrapper.connectGui`` binds;
2. the module's code (``ast``, so comments and strings do not count): every
   ``self.ui.<name>`` and what is done with it (a property read or assigned,
   a method called, a signal connected), following the widget through loop
   variables, local names and ``self.<method>(...)`` arguments;
3. :data:`WIDGET_API`: what each widget class offers to Python, from the
   Qt 5 class reference and the CTK / Slicer headers (PythonQt exposes Qt
   properties as attributes and slots, ``Q_INVOKABLE`` and wrapped methods as
   methods), and :data:`GUI_CONNECTORS`: which widget classes
   ``parameterNodeWrapper`` can bind to which parameter types.

:func:`check` returns the problems as sentences (empty: they fit).
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# -- what each widget class offers -------------------------------------------------------------

QT5 = "Qt 5.15 class reference, https://doc.qt.io/qt-5/{}.html"
CTK = (
    "CTK Libs/Widgets/{}.h at 82cae5781621845486bad2697aed095f04cfbe76 (Slicer 5.8.1's CTK) and "
    "5056664a20a3d0a393bb6d91f040525581e0dcdf (Slicer 5.12.3's); only properties, slots, "
    "Q_INVOKABLE methods and signals reach Python"
)
MRML = (
    "Slicer Libs/MRML/Widgets/{}.h, unchanged from v5.8.1 (11eaf62e) to v5.12.3 (9034c71a); "
    "only properties, slots, Q_INVOKABLE methods and signals reach Python"
)


@dataclass(frozen=True)
class WidgetApi:
    """One class's own members (its base class adds the rest)."""

    base: str | None
    source: str
    properties: frozenset[str] = frozenset()
    methods: frozenset[str] = frozenset()
    signals: frozenset[str] = frozenset()  # normalised signatures, as connect() takes them
    qt: bool = False  # a Qt class: needs no <customwidget> declaration


def _api(base, source, properties="", methods="", signals="", qt=False) -> WidgetApi:
    return WidgetApi(
        base,
        source,
        frozenset(properties.split()),
        frozenset(methods.split()),
        frozenset(normalize_signature(s) for s in signals.split()),
        qt,
    )


def normalize_signature(signature: str) -> str:
    """``currentPathChanged(const QString &)`` -> ``currentPathChanged(QString)`` (as QMetaObject does)."""
    name, _, args = signature.replace(" ", "").partition("(")
    args = args.rstrip(")")
    parts = [re.sub(r"^const", "", a).rstrip("&") for a in args.split(",") if a]
    return f"{name}({','.join(parts)})"


WIDGET_API: dict[str, WidgetApi] = {
    "QObject": _api(
        None,
        QT5.format("qobject") + "; connect/disconnect(signal, slot) are PythonQt's",
        "objectName",
        "connect disconnect blockSignals deleteLater findChild findChildren parent property setProperty "
        "setObjectName",
        "destroyed() destroyed(QObject*) objectNameChanged(QString)",
        qt=True,
    ),
    "QWidget": _api(
        "QObject",
        QT5.format("qwidget"),
        "enabled visible toolTip statusTip whatsThis geometry size minimumSize maximumSize sizePolicy "
        "font styleSheet windowTitle focus",
        "show hide close setVisible setHidden setEnabled setDisabled setToolTip setFocus update repaint "
        "isVisible isEnabled isHidden layout setLayout adjustSize setMinimumSize setMaximumSize",
        "customContextMenuRequested(QPoint) windowTitleChanged(QString)",
        qt=True,
    ),
    "QFrame": _api("QWidget", QT5.format("qframe"), "frameShape frameShadow lineWidth midLineWidth", qt=True),
    "QLabel": _api(
        "QFrame",
        QT5.format("qlabel"),
        "text wordWrap textFormat alignment textInteractionFlags pixmap openExternalLinks indent margin",
        "setText clear setNum setPixmap",
        "linkActivated(QString) linkHovered(QString)",
        qt=True,
    ),
    "QAbstractButton": _api(
        "QWidget",
        QT5.format("qabstractbutton"),
        "text icon iconSize checkable checked autoExclusive autoRepeat shortcut down",
        "setText setIcon setChecked setCheckable click animateClick toggle isChecked",
        "clicked() clicked(bool) toggled(bool) pressed() released()",
        qt=True,
    ),
    "QPushButton": _api(
        "QAbstractButton", QT5.format("qpushbutton"), "autoDefault default flat", "setMenu showMenu", qt=True
    ),
    "QRadioButton": _api("QAbstractButton", QT5.format("qradiobutton"), qt=True),
    "QCheckBox": _api(
        "QAbstractButton",
        QT5.format("qcheckbox"),
        "tristate",
        "checkState setCheckState setTristate",
        "stateChanged(int)",
        qt=True,
    ),
    "QLineEdit": _api(
        "QWidget",
        QT5.format("qlineedit"),
        "text placeholderText readOnly maxLength inputMask echoMode modified clearButtonEnabled alignment",
        "setText clear selectAll setPlaceholderText setReadOnly",
        "textChanged(QString) textEdited(QString) editingFinished() returnPressed()",
        qt=True,
    ),
    "QTextEdit": _api(
        "QWidget",
        QT5.format("qtextedit"),
        "plainText html readOnly placeholderText",
        "setPlainText toPlainText setHtml toHtml clear append",
        "textChanged()",
        qt=True,
    ),
    "QComboBox": _api(
        "QWidget",
        QT5.format("qcombobox"),
        "count currentIndex currentText currentData editable maxVisibleItems",
        "addItem addItems insertItem removeItem clear itemData itemText setItemData setItemText findData "
        "findText setCurrentIndex setCurrentText",
        "activated(int) currentIndexChanged(int) currentTextChanged(QString) textActivated(QString) "
        "highlighted(int)",
        qt=True,
    ),
    "QListWidget": _api(
        "QWidget",
        QT5.format("qlistwidget") + " (and QAbstractItemView's)",
        "count currentRow sortingEnabled selectionMode",
        "addItem addItems insertItem item takeItem clear currentItem setCurrentRow row findItems "
        "selectedItems sortItems",
        "itemChanged(QListWidgetItem*) itemClicked(QListWidgetItem*) itemDoubleClicked(QListWidgetItem*) "
        "currentRowChanged(int) currentItemChanged(QListWidgetItem*,QListWidgetItem*) itemSelectionChanged()",
        qt=True,
    ),
    "QAbstractSpinBox": _api(
        "QWidget",
        QT5.format("qabstractspinbox"),
        "readOnly keyboardTracking wrapping specialValueText buttonSymbols text",
        "clear selectAll stepUp stepDown",
        "editingFinished()",
        qt=True,
    ),
    "QSpinBox": _api(
        "QAbstractSpinBox",
        QT5.format("qspinbox"),
        "value minimum maximum singleStep prefix suffix cleanText displayIntegerBase",
        "setValue setRange setMinimum setMaximum setSingleStep setPrefix setSuffix",
        "valueChanged(int) textChanged(QString)",
        qt=True,
    ),
    "QDoubleSpinBox": _api(
        "QAbstractSpinBox",
        QT5.format("qdoublespinbox"),
        "value minimum maximum singleStep decimals prefix suffix cleanText",
        "setValue setRange setMinimum setMaximum setSingleStep setDecimals setPrefix setSuffix",
        "valueChanged(double) textChanged(QString)",
        qt=True,
    ),
    "QProgressBar": _api(
        "QWidget",
        QT5.format("qprogressbar"),
        "value minimum maximum format text textVisible orientation invertedAppearance alignment",
        "setValue setRange setMinimum setMaximum setFormat resetFormat reset",
        "valueChanged(int)",
        qt=True,
    ),
    "ctkCollapsibleButton": _api(
        "QAbstractButton",
        CTK.format("ctkCollapsibleButton"),
        "collapsed collapsedHeight flat contentsFrameShape contentsFrameShadow contentsLineWidth "
        "contentsMidLineWidth buttonTextAlignment indicatorAlignment",
        "",
        "contentsCollapsed(bool)",
    ),
    "ctkPathLineEdit": _api(
        "QWidget",
        CTK.format("ctkPathLineEdit"),
        "label filters currentPath options settingKey showBrowseButton showHistoryButton sizeAdjustPolicy "
        "minimumContentsLength nameFilters",
        "setCurrentPath browse retrieveHistory addCurrentPathToHistory comboBox",
        "validInputChanged(bool) currentPathChanged(QString)",
    ),
    "qMRMLWidget": _api(
        "QWidget",
        MRML.format("qMRMLWidget"),
        "",
        "mrmlScene setMRMLScene",
        "mrmlSceneChanged(vtkMRMLScene*)",
    ),
    "qMRMLNodeComboBox": _api(
        "QWidget",
        MRML.format("qMRMLNodeComboBox"),
        "currentNodeID nodeTypes showHidden showChildNodeTypes hideChildNodeTypes baseName noneEnabled "
        "addEnabled removeEnabled editEnabled renameEnabled interactionNodeSingletonTag "
        "selectNodeUponCreation noneDisplay sizeAdjustPolicy",
        "mrmlScene setMRMLScene currentNode currentNodeId setCurrentNode setCurrentNodeID setCurrentNodeIndex "
        "addNode removeCurrentNode editCurrentNode renameCurrentNode nodeCount nodeFromIndex addAttribute "
        "removeAttribute setNodeTypeLabel nodeTypeLabel sortFilterProxyModel addMenuAction",
        "currentNodeChanged(vtkMRMLNode*) currentNodeChanged(bool) currentNodeIDChanged(QString) "
        "nodeActivated(vtkMRMLNode*) nodeAdded(vtkMRMLNode*) nodeAddedByUser(vtkMRMLNode*) "
        "nodeAddedByUserAction(vtkMRMLNode*) nodeAboutToBeRemoved(vtkMRMLNode*) currentNodeRenamed(QString)",
    ),
}

#: Which widget classes ``parameterNodeWrapper`` binds to which parameter types:
#: the ``canRepresent`` methods of Base/Python/slicer/parameterNodeWrapper/guiConnectors.py
#: in Slicer v5.8.1 (11eaf62e5a70b828021ff8beebbdd14d10d4f51c), the oldest release kept
#: here (5.10 and 5.12 add more pairs, none removed).  They compare ``type(widget)``
#: exactly: a subclass does not count.  A combo box bound to int/float/str/bool also
#: needs a ``Choice`` annotation (QComboBoxToStringableConnector.create).
GUI_CONNECTORS: dict[str, frozenset[str]] = {
    "bool": frozenset({"QCheckBox", "ctkCheckBox", "QPushButton", "QComboBox", "ctkComboBox"}),
    "int": frozenset({"QSlider", "QSpinBox", "QComboBox", "ctkComboBox"}),
    "float": frozenset(
        {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
         "qMRMLSpinBox", "QComboBox", "ctkComboBox"}
    ),
    "str": frozenset({"QLineEdit", "QLabel", "QTextEdit", "QComboBox", "ctkComboBox"}),
    "enum": frozenset({"QComboBox", "ctkComboBox"}),
    "pathlib.Path": frozenset({"ctkPathLineEdit", "ctkDirectoryButton"}),
    "FloatRange": frozenset({"ctkRangeWidget", "ctkDoubleRangeSlider", "qMRMLRangeWidget"}),
    "node": frozenset({"qMRMLNodeComboBox"}),
}
COMBO_BOXES = frozenset({"QComboBox", "ctkComboBox"})


def lineage(cls: str) -> list[WidgetApi]:
    chain = []
    while cls is not None:
        api = WIDGET_API[cls]
        chain.append(api)
        cls = api.base
    return chain


def members(cls: str) -> tuple[set[str], set[str], set[str]]:
    """(properties, methods, signals) of ``cls`` with everything it inherits."""
    properties, methods, signals = set(), set(), set()
    for api in lineage(cls):
        properties |= api.properties
        methods |= api.methods
        signals |= api.signals
    return properties, methods, signals


# -- the .ui file -------------------------------------------------------------------------------


@dataclass
class UiWidget:
    name: str
    cls: str
    parameter: str | None  # its SlicerParameterName, if any


@dataclass
class UiFile:
    root: UiWidget
    widgets: dict[str, UiWidget]
    duplicates: list[str]
    custom_widgets: dict[str, str | None]  # class -> the class it extends
    connections: list[tuple[str, str, str, str]]  # sender, signal, receiver, slot


def read_ui(path: str | Path) -> UiFile:
    """Widgets, custom widget declarations and connections of a Qt Designer file."""
    tree = ET.parse(path)
    top = tree.getroot()
    widgets: dict[str, UiWidget] = {}
    duplicates = []
    for element in top.iter("widget"):
        parameter = None
        for prop in element.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameter = prop.findtext("string")
        widget = UiWidget(element.get("name"), element.get("class"), parameter)
        if widget.name in widgets:
            duplicates.append(widget.name)
        widgets[widget.name] = widget
    root_element = top.find("widget")
    custom = {c.findtext("class"): c.findtext("extends") for c in top.iter("customwidget")}
    connections = [
        (c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
        for c in top.iter("connection")
    ]
    return UiFile(widgets[root_element.get("name")], widgets, duplicates, custom, connections)


# -- the module's code -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """One thing the code does with a widget: ``kind`` is property, method, signal or widget."""

    kind: str
    member: str | None
    line: int


@dataclass
class CodeUses:
    widgets: dict[str, list[Use]] = field(default_factory=lambda: defaultdict(list))
    root: list[Use] = field(default_factory=list)  # uses of the loadUI(...) result


def _ui_name(node: ast.AST) -> str | None:
    """``NAME`` of an expression ``self.ui.NAME``."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    ):
        return node.attr
    return None


def _ui_names(node: ast.AST) -> list[str]:
    """The widgets an expression stands for: ``self.ui.X`` or a tuple/list of them."""
    if isinstance(node, (ast.Tuple, ast.List)):
        names = [_ui_name(e) for e in node.elts]
        return names if names and all(names) else []
    name = _ui_name(node)
    return [name] if name else []


def _use_of(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> Use:
    """What is done with the widget expression ``node``."""
    parent = parents.get(node)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        grand = parents.get(parent)
        if isinstance(grand, ast.Call) and grand.func is parent:
            if parent.attr in ("connect", "disconnect") and grand.args:
                first = grand.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return Use("signal", normalize_signature(first.value), node.lineno)
            return Use("method", parent.attr, node.lineno)
        if (
            isinstance(grand, ast.Attribute)
            and grand.attr in ("connect", "disconnect")
            and isinstance(parents.get(grand), ast.Call)
        ):
            return Use("signal-name", parent.attr, node.lineno)  # widget.toggled.connect(slot)
        return Use("property", parent.attr, node.lineno)
    return Use("widget", None, node.lineno)


def _is_load_ui(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "loadUI"


def read_code(source: str) -> CodeUses:
    """Every ``self.ui.<name>`` in ``source`` with what is done with it.

    A widget reached through a name is followed within that name's scope:
    ``for w in (self.ui.a, self.ui.b)``, ``for k, w in zip(keys, (self.ui.a, ...))``,
    ``w = self.ui.a`` and ``self.method(self.ui.a)`` (the method's parameter);
    the ``slicer.util.loadUI(...)`` result is tracked as the root widget.
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    methods: dict[str, list[ast.FunctionDef]] = defaultdict(list)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            methods[node.name].append(node)

    def scope_of(node: ast.AST) -> ast.AST:
        while node in parents and not isinstance(node, (ast.FunctionDef, ast.Module)):
            node = parents[node]
        return node

    uses = CodeUses()
    aliases: list[tuple[ast.AST, str, list[str]]] = []  # (scope, variable, widget names); "" = root
    for node in ast.walk(tree):
        name = _ui_name(node)
        if name:
            uses.widgets[name].append(_use_of(node, parents))
        if isinstance(node, ast.For):
            if isinstance(node.target, ast.Name) and _ui_names(node.iter):
                aliases.append((node, node.target.id, _ui_names(node.iter)))
            elif (
                isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Name)
                and node.iter.func.id == "zip"
                and isinstance(node.target, ast.Tuple)
            ):
                for target, arg in zip(node.target.elts, node.iter.args):
                    if isinstance(target, ast.Name) and _ui_names(arg):
                        aliases.append((node, target.id, _ui_names(arg)))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if _ui_name(node.value):
                aliases.append((scope_of(node), node.targets[0].id, [_ui_name(node.value)]))
            elif _is_load_ui(node.value):
                aliases.append((scope_of(node), node.targets[0].id, [""]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            for index, arg in enumerate(node.args):
                if _ui_name(arg):
                    for function in methods.get(node.func.attr, []):
                        params = function.args.args[1:]  # after self
                        if index < len(params):
                            aliases.append((function, params[index].arg, [_ui_name(arg)]))

    for scope, variable, names in aliases:
        for node in ast.walk(scope):
            if isinstance(node, ast.Name) and node.id == variable and isinstance(node.ctx, ast.Load):
                use = _use_of(node, parents)
                for name in names:
                    (uses.root if name == "" else uses.widgets[name]).append(use)
    return uses


# -- the parameter node's fields -------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # a GUI_CONNECTORS key, or what the annotation names
    choice: bool  # annotated with Choice([...])


def read_parameters(source: str) -> dict[str, Parameter]:
    """The fields of the ``@parameterNodeWrapper`` class in ``source``."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list):
            fields = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = _parameter(item.target.id, item.annotation)
            return fields
    raise ValueError("no @parameterNodeWrapper class")


def _parameter(name: str, annotation: ast.AST) -> Parameter:
    choice = False
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("Annotated", "typing.Annotated"):
        base, *extra = annotation.slice.elts
        choice = any(isinstance(e, ast.Call) and ast.unparse(e.func) == "Choice" for e in extra)
        annotation = base
    text = ast.unparse(annotation)
    if text.startswith(("vtkMRML", "slicer.vtkMRML")):
        kind = "node"
    elif text in ("Path", "pathlib.Path"):
        kind = "pathlib.Path"
    else:
        kind = text
    return Parameter(name, kind, choice)


# -- the check ---------------------------------------------------------------------------------------


def check(ui_path: str | Path, code_path: str | Path) -> list[str]:
    """Every way the ``.ui`` file and the module's code disagree, as one sentence each."""
    ui = read_ui(ui_path)
    source = Path(code_path).read_text(encoding="utf-8")
    uses = read_code(source)
    parameters = read_parameters(source)
    ui_file, code_file = Path(ui_path).name, Path(code_path).name
    problems = [f"{ui_file}: two widgets are named {name!r}" for name in ui.duplicates]

    # Each class in the file: known here, and declared when Qt does not provide it.
    for widget in ui.widgets.values():
        if widget.cls not in WIDGET_API:
            problems.append(
                f"{ui_file}: {widget.name} is a {widget.cls}, a class the widget API table does not know "
                "(add it with its source)"
            )
        elif not WIDGET_API[widget.cls].qt and widget.cls not in ui.custom_widgets:
            problems.append(f"{ui_file}: {widget.cls} ({widget.name}) is not declared under <customwidgets>")

    def describe(cls: str, use: Use, subject: str) -> str | None:
        properties, methods, signals = members(cls)
        where = f"{code_file}:{use.line}: {subject}"
        if use.kind == "property" and use.member not in properties:
            if use.member in methods:
                return f"{where}.{use.member} is a method of {cls}: call it"
            return f"{where}.{use.member}: {cls} has no property {use.member!r}"
        if use.kind == "method" and use.member not in methods:
            if use.member in properties:
                return f"{where}.{use.member}() calls {cls}'s property {use.member!r}: read or assign it"
            return f"{where}.{use.member}(): {cls} has no method {use.member!r}"
        if use.kind == "signal" and use.member not in signals:
            return f"{where}: {cls} has no signal {use.member}"
        if use.kind == "signal-name" and not any(s.startswith(use.member + "(") for s in signals):
            return f"{where}.{use.member}: {cls} has no signal {use.member!r}"
        return None

    # Each widget the code uses: there, and of a class that does what the code does with it.
    for name, name_uses in sorted(uses.widgets.items()):
        widget = ui.widgets.get(name)
        if widget is None:
            lines = ", ".join(str(u.line) for u in name_uses)
            problems.append(f"{code_file}:{lines}: self.ui.{name}: no widget named {name!r} in {ui_file}")
            continue
        if widget.cls not in WIDGET_API:
            continue
        for use in name_uses:
            problem = describe(widget.cls, use, f"self.ui.{name}")
            if problem:
                problems.append(problem)
    if ui.root.cls in WIDGET_API:
        for use in uses.root:
            problem = describe(ui.root.cls, use, f"the loaded {ui_file} ({ui.root.cls})")
            if problem:
                problems.append(problem)

    # Connections made in the file itself.
    for sender, signal, receiver, slot in ui.connections:
        for role, name in (("sender", sender), ("receiver", receiver)):
            if name not in ui.widgets:
                problems.append(f"{ui_file}: connection {role} {name!r} is not a widget of the file")
        sender_cls = ui.widgets[sender].cls if sender in ui.widgets else None
        receiver_cls = ui.widgets[receiver].cls if receiver in ui.widgets else None
        if sender_cls in WIDGET_API and normalize_signature(signal) not in members(sender_cls)[2]:
            problems.append(f"{ui_file}: {sender} ({sender_cls}) has no signal {signal}")
        if receiver_cls in WIDGET_API and slot.partition("(")[0] not in members(receiver_cls)[1]:
            problems.append(f"{ui_file}: {receiver} ({receiver_cls}) has no slot {slot}")

    # What parameterNodeWrapper.connectGui binds.
    bound: dict[str, str] = {}
    for widget in ui.widgets.values():
        if widget.parameter is None:
            continue
        if widget.parameter in bound:
            problems.append(
                f"{ui_file}: {bound[widget.parameter]} and {widget.name} are both bound to parameter "
                f"{widget.parameter!r}"
            )
        bound[widget.parameter] = widget.name
        parameter = parameters.get(widget.parameter)
        if parameter is None:
            problems.append(
                f"{ui_file}: {widget.name} is bound to {widget.parameter!r}, which the parameter node "
                f"of {code_file} does not have"
            )
            continue
        classes = GUI_CONNECTORS.get(parameter.kind, frozenset())
        if widget.cls not in classes:
            problems.append(
                f"{ui_file}: {widget.name} is a {widget.cls}; parameterNodeWrapper cannot bind it to "
                f"{parameter.name} ({parameter.kind}); it can use {', '.join(sorted(classes)) or 'no widget'}"
            )
        elif widget.cls in COMBO_BOXES and parameter.kind in ("int", "float", "str", "bool") and not parameter.choice:
            problems.append(
                f"{code_file}: {parameter.name} is bound to the combo box {widget.name} and needs a Choice([...]) "
                "annotation"
            )
    return problems
