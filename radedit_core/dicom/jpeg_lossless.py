"""A small JPEG Lossless (ITU-T T.81 process 14, first-order prediction) encoder.

pydicom can decode JPEG Lossless (through pylibjpeg-libjpeg or GDCM) but has
no encoder for it, and archives are full of such images.  The synthetic test
data needs real JPEG Lossless SV1 streams (transfer syntax 1.2.840.10008.1.2.4.70)
so that the decoder path is exercised exactly as with scanner output; this
module writes them.  It is deliberately minimal: one component, predictor 1
(left neighbour), no point transform, no restart intervals, one Huffman
table optimised for the image (T.81 Annex K.2).
"""

from __future__ import annotations

import struct

import numpy as np

_MAX_CATEGORY = 16


def _huffman_code_lengths(freq: np.ndarray) -> dict[int, int]:
    """Code length per symbol, limited to 16 bits, all-ones code reserved (T.81 K.2/K.3)."""
    # One extra pseudo-symbol with the smallest frequency takes the all-ones
    # code, which JPEG forbids; it is dropped again after length limiting.
    counts = [int(f) for f in freq] + [1]
    n = len(counts)
    size = [0] * n
    others = [-1] * n
    while True:
        live = [i for i in range(n) if counts[i] > 0]
        if len(live) < 2:
            break
        # Least frequent first; among equals the larger index, as Annex K does.
        c1 = min(live, key=lambda i: (counts[i], -i))
        c2 = min((i for i in live if i != c1), key=lambda i: (counts[i], -i))
        counts[c1] += counts[c2]
        counts[c2] = 0
        for start in (c1, c2):
            node = start
            size[node] += 1
            while others[node] >= 0:
                node = others[node]
                size[node] += 1
        node = c1
        while others[node] >= 0:
            node = others[node]
        others[node] = c2
    return {i: size[i] for i in range(n) if size[i] > 0}


def _huffman_table(freq: np.ndarray) -> tuple[list[int], list[int], dict[int, tuple[int, int]]]:
    """(BITS, HUFFVAL, {symbol: (code, length)}) of an optimal JPEG table."""
    lengths = _huffman_code_lengths(freq)
    reserved = len(freq)
    bits = [0] * 33
    for length in lengths.values():
        bits[length] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # the reserved pseudo-symbol's slot
    order = sorted((s for s in lengths if s != reserved), key=lambda s: (lengths[s], s))
    table: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            table[order[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return bits[1:17], order, table


def _differences(values: np.ndarray, precision: int) -> np.ndarray:
    """Prediction residuals of T.81 H.1.2.1 with predictor 1, reduced modulo 2**16."""
    x = values.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]
    pred[1:, 0] = x[:-1, 0]
    pred[1:, 1:] = x[1:, :-1]
    diff = (x - pred) % 65536
    return np.where(diff >= 32768, diff - 65536, diff)


def encode_jpeg_lossless(array: np.ndarray, precision: int) -> bytes:
    """Encode a 2D array of ``precision``-bit samples (2..16) as a JPEG Lossless SV1 stream.

    Signed data must be given as its two's complement bit pattern in
    ``precision`` bits (as DICOM stores it); the caller masks it.
    """
    if array.ndim != 2:
        raise ValueError(f"expected a 2D array, got shape {array.shape}")
    if not 2 <= precision <= 16:
        raise ValueError(f"JPEG Lossless precision must be 2..16 bits, got {precision}")
    values = np.asarray(array, dtype=np.int64)
    if values.min() < 0 or values.max() >= (1 << precision):
        raise ValueError(f"sample values must lie in [0, {(1 << precision) - 1}]")
    rows, cols = values.shape
    diff = _differences(values, precision).ravel()
    magnitude = np.abs(diff)
    category = np.zeros(magnitude.shape, dtype=np.int64)
    nz = magnitude > 0
    category[nz] = np.floor(np.log2(magnitude[nz])).astype(np.int64) + 1
    freq = np.bincount(category, minlength=_MAX_CATEGORY + 1)
    bits, huffval, table = _huffman_table(freq)

    codes = np.zeros(_MAX_CATEGORY + 1, dtype=np.int64)
    code_len = np.zeros(_MAX_CATEGORY + 1, dtype=np.int64)
    for symbol, (code, length) in table.items():
        codes[symbol], code_len[symbol] = code, length
    # Category 16 stands for a difference of 32768 alone and has no extra bits.
    extra_len = np.where(category == 16, 0, category)
    extra = np.where(diff < 0, diff - 1, diff) & ((1 << extra_len) - 1)
    word = (codes[category] << extra_len) | extra
    nbits = code_len[category] + extra_len

    ends = np.cumsum(nbits)
    starts = ends - nbits
    total = int(ends[-1]) if ends.size else 0
    stream = np.ones(((total + 7) // 8) * 8, dtype=np.uint8)  # pad with 1-bits (T.81 F.1.2.3)
    for k in range(int(nbits.max()) if nbits.size else 0):
        sel = nbits > k
        stream[starts[sel] + k] = (word[sel] >> (nbits[sel] - 1 - k)) & 1
    entropy = np.packbits(stream)
    stuffed = np.insert(entropy, np.flatnonzero(entropy == 0xFF) + 1, 0)

    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + struct.pack(">HBHHB", 11, precision, rows, cols, 1) + bytes([1, 0x11, 0])
    dht = bytes([0x00]) + bytes(bits) + bytes(huffval)
    out += b"\xff\xc4" + struct.pack(">H", 2 + len(dht)) + dht
    # SOS: one component, table 0, predictor 1 (Ss), Se 0, Ah/Al 0 (no point transform).
    out += b"\xff\xda" + struct.pack(">H", 8) + bytes([1, 1, 0x00, 1, 0, 0])
    out += stuffed.tobytes()
    out += b"\xff\xd9"
    return bytes(out)


__all__ = ["encode_jpeg_lossless"]
