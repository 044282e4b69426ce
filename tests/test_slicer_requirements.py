"""What the Slicer module installs into Slicer's Python must not replace what Slicer pins.

Slicer's SuperBuild installs fixed versions of pydicom, numpy, pillow, ...
(``SuperBuild/External_python-*.cmake``), and its own modules (DICOM import
and export among them) were built and tested with them.  The pins below were
read from github.com/Slicer/Slicer at the commits given; the module's
``Resources/requirements.txt`` (installed with a constraints file that pins
everything already there) must be satisfied by them wherever Slicer's Python
is the module's default, and where it cannot be (Slicer 5.10 pins pydicom
2.4.4; Slicer 5.8 ships Python 3.9) the default is the external environment.

Checked by hand once with pip's resolver (``pip install --dry-run
--ignore-installed --python-version 3.12 --only-binary=:all: -r
requirements.txt "torch>=2.3" -c <the 5.12.3 pins>`` against PyPI, 2026-11-29):
it resolves (79 distributions, monai 1.5.2), every Slicer pin kept, so no
transitive dependency needs a newer version either.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "RadEditSlicer") not in sys.path:
    sys.path.insert(0, str(REPO / "RadEditSlicer"))  # RadEditLib.environment is plain Python

from RadEditLib import environment

REQUIREMENTS = REPO / "RadEditSlicer" / "Resources" / "requirements.txt"


@dataclass(frozen=True)
class SlicerRelease:
    ref: str
    commit: str
    date: str
    python: str  # CMakeLists.txt: Slicer_REQUIRED_PYTHON_VERSION
    pins: dict[str, tuple[str, ...]]  # SuperBuild file -> the name==version lines it installs

    def installed(self) -> dict[str, str]:
        versions = {}
        for lines in self.pins.values():
            for line in lines:
                name, version = line.split("==")
                versions[canonicalize_name(name)] = version
        return versions

    @property
    def python_version(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.python.split("."))


_COMMON_58 = {
    "External_python-extension-manager-requirements.cmake": (
        "GitPython==3.1.43", "chardet==5.2.0", "couchdb==1.2", "gitdb==4.0.11", "six==1.16.0", "smmap==5.0.1",
    ),
    "External_python-extension-manager-ssl-requirements.cmake": (
        "Deprecated==1.2.14", "PyGithub==2.3.0", "PyNaCl==1.5.0", "cffi==1.16.0", "cryptography==42.0.7",
        "pycparser==2.22", "python-dateutil==2.9.0.post0", "six==1.16.0", "typing_extensions==4.12.1", "wrapt==1.16.0",
    ),
}

SLICER_RELEASES = [
    SlicerRelease(
        "v5.8.1",
        "11eaf62e5a70b828021ff8beebbdd14d10d4f51c",
        "2025-03-02",
        "3.9.10",
        {
            "External_python-dicom-requirements.cmake": (
                "dicomweb-client==0.59.1", "pillow==10.3.0", "pydicom==2.4.4", "retrying==1.3.4", "six==1.16.0",
            ),
            **_COMMON_58,
            "External_python-numpy.cmake": ("numpy==1.26.4",),
            "External_python-pip.cmake": ("pip==24.0",),
            "External_python-pythonqt-requirements.cmake": ("packaging==24.0", "pyparsing==3.1.2", "six==1.16.0"),
            "External_python-requests-requirements.cmake": (
                "certifi==2024.2.2", "charset-normalizer==3.3.2", "idna==3.7", "requests==2.32.3", "urllib3==2.2.1",
            ),
            "External_python-scipy.cmake": ("scipy==1.13.1",),
            "External_python-setuptools.cmake": ("setuptools==70.0.0",),
            "External_python-wheel.cmake": ("wheel==0.43.0",),
            # Built from source: the GIT_TAG's comment "slicer-v2.3.1-2024-05-20-bc4449e".
            "External_SimpleITK.cmake": ("SimpleITK==2.3.1",),
        },
    ),
    SlicerRelease(
        "v5.10.0",
        "a2b6d082be04274a849884fbb1e85634a9df90fb",
        "2025-11-10",
        "3.12.10",
        {
            "External_python-dicom-requirements.cmake": (
                "dicomweb-client==0.60.0", "pillow==11.2.1", "pydicom==2.4.4", "retrying==1.3.4", "six==1.17.0",
            ),
            "External_python-extension-manager-requirements.cmake": (
                "GitPython==3.1.44", "chardet==5.2.0", "couchdb==1.2", "gitdb==4.0.12", "six==1.17.0", "smmap==5.0.2",
            ),
            "External_python-extension-manager-ssl-requirements.cmake": (
                "Deprecated==1.2.18", "PyGithub==2.6.1", "PyJWT==2.10.1", "PyNaCl==1.5.0", "cffi==1.17.1",
                "cryptography==45.0.3", "pycparser==2.22", "python-dateutil==2.9.0.post0", "six==1.17.0",
                "typing_extensions==4.14.0", "wrapt==1.17.2",
            ),
            "External_python-numpy.cmake": ("numpy==2.0.2",),
            "External_python-pip.cmake": ("pip==25.1.1",),
            "External_python-pythonqt-requirements.cmake": ("packaging==25.0", "pyparsing==3.2.3", "six==1.17.0"),
            "External_python-requests-requirements.cmake": (
                "certifi==2025.4.26", "charset-normalizer==3.4.2", "idna==3.10", "requests==2.32.3", "urllib3==2.4.0",
            ),
            "External_python-scipy.cmake": ("scipy==1.13.1",),
            "External_python-setuptools.cmake": ("setuptools==80.9.0",),
            "External_python-wheel.cmake": ("wheel==0.45.1",),
            # Built from source: the GIT_TAG's comment "slicer-v2.5.2-2025-06-13-2018b6b".
            "External_SimpleITK.cmake": ("SimpleITK==2.5.2",),
        },
    ),
]
_PINS_512 = {
    "External_python-SimpleITK.cmake": ("simpleitk==2.5.5",),
    "External_python-dicom-requirements.cmake": (
        "dcmqi==0.4.0", "dicomweb-client==0.61.0", "highdicom==0.27.0", "pillow==12.2.0", "pydicom==3.0.2",
        "pyjpegls==1.5.1", "retrying==1.4.2", "six==1.17.0", "typing_extensions==4.15.0",
    ),
    "External_python-extension-manager-requirements.cmake": (
        "GitPython==3.1.50", "chardet==7.4.3", "couchdb==1.2", "gitdb==4.0.12", "six==1.17.0", "smmap==5.0.3",
    ),
    "External_python-extension-manager-ssl-requirements.cmake": (
        "Deprecated==1.3.1", "PyGithub==2.9.1", "PyJWT==2.13.0", "PyNaCl==1.6.2", "cffi==2.0.0", "cryptography==48.0.0",
        "pycparser==3.0", "python-dateutil==2.9.0.post0", "six==1.17.0", "typing_extensions==4.15.0", "wrapt==2.2.1",
    ),
    "External_python-numpy.cmake": ("numpy==2.4.6",),
    "External_python-pip.cmake": ("pip==26.1.1",),
    "External_python-pythonqt-requirements.cmake": ("packaging==26.2", "pyparsing==3.3.2", "six==1.17.0"),
    "External_python-requests-requirements.cmake": (
        "certifi==2026.5.20", "charset-normalizer==3.4.7", "idna==3.16", "requests==2.34.2", "urllib3==2.7.0",
    ),
    "External_python-scipy.cmake": ("scipy==1.17.1",),
    "External_python-setuptools.cmake": ("setuptools==82.0.1",),
    "External_python-wheel.cmake": ("packaging==26.2", "wheel==0.47.0"),
}
SLICER_RELEASES += [
    SlicerRelease("v5.12.3", "9034c71a8fce68ab312458b3d7d16f610562263d", "2026-07-22", "3.12.10", _PINS_512),
    # main had the same pins as 5.12.3 when read.
    SlicerRelease("main", "583e9b37d50ead7daf7b783dce465ccaecec8809", "2026-08-21", "3.12.10", _PINS_512),
]

#: Why Slicer's Python is not the default there (empty: it is the default).
EXPECTED_PROBLEMS = {
    "v5.8.1": ["Python 3.9.10 is older than the 3.10 radedit_core needs", "pydicom 2.4.4 is installed, RadEdit needs pydicom>=3.0"],
    "v5.10.0": ["pydicom 2.4.4 is installed, RadEdit needs pydicom>=3.0"],
    "v5.12.3": [],
    "main": [],
}


def module_requirements() -> list[str]:
    return environment.read_requirements(REQUIREMENTS) + [environment.TORCH_REQUIREMENT]


def pyproject_dependencies() -> list[str]:
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    return re.findall(r'^\s*"([^"]+)"', block, re.M)


@pytest.mark.parametrize("release", SLICER_RELEASES, ids=[r.ref for r in SLICER_RELEASES])
def test_requirements_keep_slicer_pins_where_slicer_python_is_the_default(release):
    installed = release.installed()
    problems = environment.slicer_python_problems(module_requirements(), installed, release.python_version)
    assert problems == EXPECTED_PROBLEMS[release.ref]
    mode = environment.default_mode(module_requirements(), installed, release.python_version)
    assert mode == ("external" if problems else "slicer")
    if mode == "slicer":
        # Every requirement Slicer already pins is met by the pinned version: pip installs nothing over it.
        for text in module_requirements():
            requirement = Requirement(text)
            pinned = installed.get(canonicalize_name(requirement.name))
            if pinned is not None:
                assert requirement.specifier.contains(pinned), (release.ref, text, pinned)


def test_what_the_module_leaves_to_slicer_slicer_ships():
    listed = {environment.requirement_name(r) for r in module_requirements()}
    left = [Requirement(r) for r in pyproject_dependencies() if environment.requirement_name(r) not in listed]
    assert sorted(canonicalize_name(r.name) for r in left) == ["numpy", "simpleitk"]
    for release in SLICER_RELEASES:
        if EXPECTED_PROBLEMS[release.ref]:
            continue
        for requirement in left:
            pinned = release.installed()[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(pinned), (release.ref, str(requirement), pinned)


def test_module_constants_follow_pyproject():
    requires_python = SpecifierSet(
        re.search(r'^requires-python = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    )
    minimum = ".".join(str(p) for p in environment.MIN_PYTHON)
    assert requires_python.contains(minimum) and not requires_python.contains(f"{environment.MIN_PYTHON[0]}.{environment.MIN_PYTHON[1] - 1}")
    torch = [Requirement(r) for r in pyproject_dependencies() if environment.requirement_name(r) == "torch"]
    assert [str(r.specifier) for r in torch] == [environment.TORCH_SPECIFIER]


def test_conflicts_and_constraints():
    conflicts = environment.requirement_conflicts(
        ["pydicom>=3.0", "numpy>=1.24; python_version < '3.0'", "monai>=1.4", "Pillow>=10"],
        {"PyDicom": "2.4.4", "numpy": "1.20", "pillow": "12.2.0"},
        python_version=(3, 12, 10),
    )
    # numpy's marker excludes Python 3.12, monai is not installed, pillow satisfies its bound.
    assert [(c.name, c.installed, c.requirement) for c in conflicts] == [("pydicom", "2.4.4", "pydicom>=3.0")]

    pins = {"Pillow": "12.2.0", "typing_extensions": "4.15.0", "torch": "2.9.0+cu128", "odd-dist": "2024.final-1"}
    lines = environment.constraints_text(pins).splitlines()
    assert lines == ["odd-dist===2024.final-1", "pillow==12.2.0", "torch==2.9.0+cu128", "typing-extensions==4.15.0"]
    for line in lines:
        requirement = Requirement(line)
        version = pins[{canonicalize_name(k): k for k in pins}[requirement.name]]
        assert requirement.specifier.contains(version, prereleases=True)
        assert not requirement.specifier.contains("999", prereleases=True)

    # This Python's own distributions, by canonical name.
    import importlib.metadata

    installed = environment.installed_versions()
    assert installed["pydicom"] == importlib.metadata.version("pydicom")
    assert installed["typing-extensions"] == importlib.metadata.version("typing_extensions")
    assert Version(installed["numpy"])


# -- install hints name published packages -----------------------------------------------------

#: Every distribution name a requirement or an install hint of this repository
#: names, checked by hand on 2026-11-29: published on PyPI
#: (https://pypi.org/pypi/<name>/json answers 200; `pip index versions <name>`).
#: radedit-core is not on PyPI (404): hints for it name a path instead.
VERIFIED_ON_PYPI = {
    "accelerate", "dicomweb-client", "diffusers", "fire", "hi-ml-multimodal", "highdicom", "huggingface-hub", "jinja2",
    "matplotlib", "onnx", "polygraphy", "scipy", "tensorrt",
    "pypng",  # installed from PyPI with pip (0.20220715.0), pure Python, not among Slicer's pins
    "timm", "torchxrayvision",  # the library predictors' extras (pip install resolved them, 2026-12-06)
    "psutil",  # the module's own requirement (environment.MODULE_REQUIREMENTS); pip show: 7.2.2 from PyPI, 2026-12-06
    "monai", "nibabel", "numpy", "pillow", "pip", "pydicom", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg",
    "pylibjpeg-rle", "pynetdicom", "python-gdcm", "pyyaml", "safetensors", "simpleitk", "torch", "tqdm", "transformers",
}
#: Debian bookworm packages named by install hints (`apt-cache policy <name>`, 2026-11-29).
VERIFIED_IN_DEBIAN = {"chromium", "dicom3tools", "fonts-dejavu-core", "orthanc", "orthanc-dicomweb"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?([<>=!~;].*)?$")
_OPTIONS_WITH_VALUE = {"-r", "-c", "-e", "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-t", "--target"}


def install_hints(text: str, command: str) -> set[str]:
    """Distribution names after ``command`` (e.g. ``pip install``) in prose, code or messages.

    A hint ends at a quote, backtick, bracket, semicolon, redirect or line
    end; options (and their values) and paths are skipped.
    """
    names = set()
    for match in re.finditer(re.escape(command) + r"\s+([^`'\"()\n;>]*)", text):
        tokens = match.group(1).split()
        skip = False
        for token in tokens:
            if skip:
                skip = False
            elif token.startswith("-"):
                skip = token in _OPTIONS_WITH_VALUE
            elif token.startswith((".", "/", "~", "$")) or "/" in token or "\\" in token:
                continue
            elif _NAME.match(token):
                names.add(canonicalize_name(re.split(r"[\[<>=!~;]", token)[0]))
            else:
                break
    return names


def test_install_hints_and_requirements_name_published_packages():
    files = [REPO / "README.md", REPO / "pyproject.toml", *sorted((REPO / "docs").rglob("*.md"))]  # the README moved to docs/
    for folder in ("radedit_core", "RadEditSlicer", "monai_bundle", "scripts"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in {".py", ".txt", ".md", ".sh", ".json", ".yaml"}]
    pip_names, apt_names = set(), set()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        pip_names |= install_hints(text, "pip install")
        apt_names |= install_hints(text, "apt-get install")
    pip_names |= {environment.requirement_name(r) for r in environment.read_requirements(REQUIREMENTS)}
    pip_names |= {environment.requirement_name(r) for r in pyproject_dependencies()}
    pip_names |= {environment.requirement_name(r) for r in environment.MODULE_REQUIREMENTS}
    assert "hi-ml-multimodal" in pip_names and "dicom3tools" in apt_names  # the scan finds the hints
    assert pip_names <= VERIFIED_ON_PYPI, pip_names - VERIFIED_ON_PYPI
    assert apt_names <= VERIFIED_IN_DEBIAN, apt_names - VERIFIED_IN_DEBIAN


def test_install_hint_scanner():
    text = (
        'raise ConfigError("the encoder comes from hi-ml-multimodal: pip install hi-ml-multimodal "\n'
        "Run `pip install -e \".[dev]\"` or pip install --upgrade pip radedit-core>=0.1 (then restart)\n"
        "with ``pip install /path/to/radedit`` or ``pip install -c constraints.txt``\n"
        "$SUDO apt-get install -y -qq --no-install-recommends dicom3tools orthanc >/dev/null\n"
    )
    assert install_hints(text, "pip install") == {"hi-ml-multimodal", "pip", "radedit-core"}
    assert install_hints(text, "apt-get install") == {"dicom3tools", "orthanc"}


def test_the_pytorch_extension_is_a_dependency_exactly_where_slicers_python_is_the_default():
    """CMakeLists.txt depends on PyTorch from the first Slicer release whose Python runs the worker."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    threshold = re.search(r'set\(RADEDIT_SLICER_PYTHON_FROM "([0-9.]+)"\)', cmake).group(1)
    assert re.search(
        r'VERSION_GREATER_EQUAL RADEDIT_SLICER_PYTHON_FROM\)\s*set\(EXTENSION_DEPENDS "PyTorch"\)\s*else\(\)\s*'
        r'set\(EXTENSION_DEPENDS "NA"\)', cmake
    )
    assert 'set(EXTENSION_DEPENDS "PyTorch")' not in cmake.split("find_package(Slicer REQUIRED)")[0]
    for release in SLICER_RELEASES:
        if release.ref == "main":
            continue
        minor = ".".join(release.ref.lstrip("v").split(".")[:2])
        uses_slicer_python = not EXPECTED_PROBLEMS[release.ref]
        assert (Version(minor) >= Version(threshold)) is uses_slicer_python, release.ref
