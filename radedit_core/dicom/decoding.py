"""Pixel Data -> stored values, cross-checked across pydicom's decoder plugins.

Two of the plugins pydicom has installed for the transfer syntax decode the
pixel data (pylibjpeg with -libjpeg/-openjpeg/-rle, python-gdcm, pyjpegls,
Pillow, pydicom's own RLE decoder; in-process plugins first, see
:func:`plugin_order`), and all of them when those two disagree; radedit has
no decoder of its own.  The results must agree: bit for bit for lossless and JPEG-LS syntaxes (their
output is fully specified), and within :func:`lossy_tolerance` for the lossy
JPEG and JPEG 2000 processes (ISO/IEC 10918-2 and 15444-4 allow decoders to
differ by rounding; measured on pydicom's test files and Pillow-made baseline
JPEGs: at most 1).

When they disagree, a result whose pixels pile up at one end of the stored
range while another decoder's do not "cannot be right": a known fault of this
kind is pylibjpeg-libjpeg's JPEG Lossless decoder, which clamps predictor
reconstructions instead of wrapping them modulo 2**16 (ITU-T T.81 H.2.1;
pylibjpeg-libjpeg issue #90), so that 8-bit images from some ultrasound and
CR encoders decode almost entirely white.  Such a result is set aside with a
note; if the remaining results still disagree, or none remains, the file is
refused.  A single decoder cannot be cross-checked: its result is refused
only when it is almost entirely one end of the stored range.

GDCM (python-gdcm) aborts the whole process on some corrupt streams (a C++
exception escapes its JPEG codec), so its plugin runs in a child process
(:data:`ISOLATED_PLUGINS`); a crash there is that plugin's failure, not the
caller's.

Stored values are then taken from the decoded words as PS3.5 8.1.1 lays them
out: ``BitsStored`` bits ending at ``HighBit`` (old files keep values in the
upper bits, e.g. BitsStored 12 with HighBit 15), two's complement when
``PixelRepresentation`` is 1; bits outside are not pixel data (overlays).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..errors import InputError

#: Share of the pixels at one end of the stored range above which a decoded
#: image is implausible when another decoder's result is not (see module doc).
SATURATED_SHARE = 0.5
#: A single decoder's result this saturated is refused outright.
SATURATED_SHARE_ALONE = 0.99

#: Plugins that run in a child process: they can abort the interpreter on corrupt data.
ISOLATED_PLUGINS = frozenset({"gdcm"})
#: Seconds a child decoder may take.
ISOLATED_TIMEOUT = 300

# The child imports only pydicom and numpy, so it works wherever radedit_core is not importable.
_CHILD = r"""
import sys
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import get_decoder
path, syntax, plugin, out = sys.argv[1:5]
ds = pydicom.dcmread(path, force=True)
if getattr(ds, "file_meta", None) is None:
    ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = syntax
words, _ = get_decoder(syntax).as_array(ds, decoding_plugin=plugin, correct_unused_bits=False, raw=True)
np.save(out, words)
"""

#: Transfer syntaxes whose decoding is fully specified: every correct decoder
#: gives the same values (lossless processes; JPEG-LS near-lossless too).
_EXACT_PREFIXES = (
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless only
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.5",  # RLE
)


@dataclass
class DecodedPixels:
    """Stored values and how they were obtained.

    ``stored``: (rows, columns) in the dtype of BitsAllocated and
    PixelRepresentation (uint8/int8/uint16/int16), original polarity.
    ``plugins``: the plugins whose (agreeing) results were used ("native"
    for uncompressed data); ``set_aside``: plugin -> why its result was not
    used; ``failed``: plugin -> its error; ``notes``: one-line remarks for
    the sidecar.
    """

    stored: np.ndarray
    plugins: list[str]
    set_aside: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"plugins": list(self.plugins), "set_aside": dict(self.set_aside), "failed": dict(self.failed)}


@contextlib.contextmanager
def _quiet(logger_name: str):
    """pydicom logs each failing decoder plugin with a traceback; the InputError says it once."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text += " " + lines[1]
    return text[:240]


def stored_value_range(ds: Dataset) -> tuple[int, int]:
    """Inclusive (min, max) representable in BitsStored with PixelRepresentation."""
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def sample_dtype(ds: Dataset) -> np.dtype:
    """numpy dtype of one stored sample: BitsAllocated 8/16, signed or not."""
    signed = int(ds.PixelRepresentation) == 1
    return np.dtype({(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
        (int(ds.BitsAllocated), signed)
    ])


def high_bit_shift(ds: Dataset) -> int:
    """How far above bit 0 the stored bits start: ``HighBit - BitsStored + 1`` (0 normally)."""
    bits = int(ds.BitsStored)
    high = ds.get("HighBit")
    high = bits - 1 if high in (None, "") else int(high)
    return high - bits + 1


def stored_from_words(words: np.ndarray, ds: Dataset) -> np.ndarray:
    """Decoded sample words -> stored values (PS3.5 8.1.1: BitsStored bits ending at HighBit)."""
    bits = int(ds.BitsStored)
    pattern = (words.astype(np.int64) >> high_bit_shift(ds)) & ((1 << bits) - 1)
    if int(ds.PixelRepresentation) == 1:
        pattern = np.where(pattern >= (1 << (bits - 1)), pattern - (1 << bits), pattern)
    return pattern.astype(sample_dtype(ds))


def lossy_tolerance(ds: Dataset, syntax: UID) -> int:
    """Largest per-pixel difference allowed between two decoders' results.

    0 for syntaxes whose output is fully specified; else 1/256 of the stored
    range (one 8-bit display level, at least 1).
    """
    if not syntax.is_encapsulated or str(syntax).startswith(_EXACT_PREFIXES):
        return 0
    vmin, vmax = stored_value_range(ds)
    return max(1, (vmax - vmin + 1) >> 8)


def _saturation(values: np.ndarray, vmin: int, vmax: int) -> tuple[float, int]:
    """Largest share of pixels at one end of the stored range, and that end."""
    at_max = float(np.mean(values == vmax))
    at_min = float(np.mean(values == vmin))
    return (at_max, vmax) if at_max >= at_min else (at_min, vmin)


def plugin_order(available: list[str]) -> list[str]:
    """Plugins in the order they are tried: in-process ones first, isolated (slower) ones last."""
    return [p for p in available if p not in ISOLATED_PLUGINS] + [p for p in available if p in ISOLATED_PLUGINS]


def _decode_in_child(path: Path, syntax: UID, plugin: str) -> np.ndarray:
    """``plugin``'s decoding of the file at ``path`` (raw words), in a child process."""
    with tempfile.TemporaryDirectory(prefix="radedit-decode-") as tmp:
        out = os.path.join(tmp, "words.npy")
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), str(syntax), plugin, out],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=ISOLATED_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"no result after {ISOLATED_TIMEOUT} s") from None
        if proc.returncode != 0 or not os.path.exists(out):
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            died = f"the decoder process died (signal {-proc.returncode})" if proc.returncode < 0 else ""
            last = lines[-1] if lines else ""
            raise RuntimeError("; ".join(part for part in (died, last) if part) or f"exit code {proc.returncode}")
        return np.load(out)


def _plugin_reason(exc: BaseException, plugin: str) -> str:
    """A plugin's error in a few words: pydicom wraps it in "Unable to decode ...: <plugin>: <error>"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(f"{plugin}:"):
            return line[len(plugin) + 1 :].strip()[:160]
    return (_short(exc) if lines else type(exc).__name__)[:160]


def _agree(a: np.ndarray, b: np.ndarray, tolerance: int) -> bool:
    return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) <= tolerance


def _groups(results: dict[str, np.ndarray], tolerance: int) -> list[list[str]]:
    groups: list[list[str]] = []
    for name, values in results.items():
        for group in groups:
            if _agree(results[group[0]], values, tolerance):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _syntax_label(syntax: UID) -> str:
    return syntax.name if syntax.name != str(syntax) else str(syntax)


def decode_stored_values(
    ds: Dataset, path: str | Path, syntax: UID, plugins: list[str] | None = None
) -> DecodedPixels:
    """Decode ``ds``'s single frame with every available plugin and cross-check them.

    Args:
        ds: an image data set with its Image Pixel module (checked by the caller).
        path: for messages.
        syntax: its transfer syntax (a decoder must exist for it).
        plugins: restrict to these plugin names (default: all available).

    Returns:
        :class:`DecodedPixels`.

    Raises:
        InputError: truncated native pixel data; no plugin decodes it; the
            decoders disagree and none can be ruled out; a single decoder's
            result is (almost) entirely one end of the stored range.
    """
    from pydicom.pixels import get_decoder  # noqa: PLC0415

    rows, cols = int(ds.Rows), int(ds.Columns)
    if not syntax.is_encapsulated:
        expected = rows * cols * int(ds.BitsAllocated) // 8
        got = len(ds.PixelData or b"")
        if got < expected:
            raise InputError(path, f"truncated pixel data: {got} bytes for {cols} x {rows} pixels, expected {expected}")
    decoder = get_decoder(syntax)
    if decoder.is_native:
        names = [""]
    else:
        names = plugin_order([p for p in decoder.available_plugins if plugins is None or p in plugins])
    results: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    tolerance = lossy_tolerance(ds, syntax)
    for name in names:
        if len(results) >= 2 and len(_groups(results, tolerance)) == 1:
            break  # two decoders agree: a third adds time, not certainty
        label = name or "native"
        try:
            if name in ISOLATED_PLUGINS and Path(path).is_file():
                words = _decode_in_child(Path(path), syntax, name)
            else:
                with _quiet("pydicom"):
                    # Unused-bit correction off: it assumes HighBit = BitsStored - 1.
                    words, _ = decoder.as_array(ds, decoding_plugin=name, correct_unused_bits=False, raw=True)
        except Exception as exc:  # noqa: BLE001 - decoders raise anything from ValueError to RuntimeError
            failed[label] = _plugin_reason(exc, label)
            continue
        if words.shape != (rows, cols):
            failed[label] = f"decoded shape {words.shape}, expected {rows} x {cols}"
            continue
        results[label] = stored_from_words(words, ds)
    if not results:
        reasons = "; ".join(f"{k}: {v}" for k, v in failed.items()) or "no decoder plugin is available"
        raise InputError(path, f"pixel data cannot be decoded ({reasons})")
    vmin, vmax = stored_value_range(ds)
    label = _syntax_label(syntax)
    if len(results) == 1:
        (name, values), = results.items()
        share, end = _saturation(values, vmin, vmax)
        if syntax.is_encapsulated and share >= SATURATED_SHARE_ALONE:
            raise InputError(
                path,
                f"{name} decodes the {label} pixel data to {share:.1%} of the pixels at {end}, the end of the "
                "stored range: a decoder fault, not a radiograph; with one decoder installed it cannot be "
                "cross-checked (install python-gdcm and pylibjpeg-libjpeg)",
            )
        notes = []
        if syntax.is_encapsulated:
            others = "; ".join(f"{k}: {v}" for k, v in failed.items()) or "no other plugin is installed"
            notes.append(f"only {name} decodes this {label} stream ({others}), so it could not be cross-checked")
        return DecodedPixels(stored=values, plugins=[name], failed=failed, notes=notes)
    groups = _groups(results, tolerance)
    if len(groups) == 1:
        return DecodedPixels(stored=results[groups[0][0]], plugins=groups[0], failed=failed)
    # Disagreement: set aside the results that pile up at one end of the range.
    shares = {name: _saturation(values, vmin, vmax) for name, values in results.items()}
    least = min(share for share, _ in shares.values())
    set_aside = {
        name: f"{share:.1%} of the pixels at {end}, the end of the stored range"
        for name, (share, end) in shares.items()
        if share > SATURATED_SHARE and share > 2 * least
    }
    kept = [group for group in groups if not set(group) & set(set_aside)]
    if len(kept) == 1 and all(set(group) <= set(set_aside) for group in groups if group is not kept[0]):
        used = kept[0]
        notes = [
            f"pixel data decoders disagree on this {label} stream: {name} gives {why} (a decoder fault, e.g. "
            f"clamped JPEG Lossless predictions, pylibjpeg-libjpeg issue #90); used {', '.join(used)}"
            for name, why in set_aside.items()
        ]
        return DecodedPixels(stored=results[used[0]], plugins=used, set_aside=set_aside, failed=failed, notes=notes)
    first, second = groups[0][0], groups[1][0]
    differ = float(np.mean(results[first].astype(np.int64) != results[second].astype(np.int64)))
    raise InputError(
        path,
        f"the {label} pixel data decoders disagree ({first} and {second} differ in {differ:.1%} of the pixels"
        f"{f', by more than {tolerance}' if tolerance else ''}) and neither result can be ruled out; "
        "the true pixels are unknown, so the file is not edited",
    )


__all__ = [
    "DecodedPixels",
    "ISOLATED_PLUGINS",
    "SATURATED_SHARE",
    "decode_stored_values",
    "high_bit_shift",
    "lossy_tolerance",
    "sample_dtype",
    "stored_from_words",
    "stored_value_range",
]
