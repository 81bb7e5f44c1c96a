#!/usr/bin/env python3
"""Reference implementation of Equicast's content-defined chunking, written from docs/release-format.md alone.

Prints the chunk boundaries of the known-answer input below; ContentDefinedChunkerTests compares the Swift
chunker against them. Run: python3 Tests/vectors/cdc_reference.py
"""

MASK64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def gear_table():
    state, table = 0x4551554943415354, []
    for _ in range(256):
        state, value = splitmix64(state)
        table.append(value)
    return table


GEAR = gear_table()
MIN, NORMAL, MAX = 16 << 10, 64 << 10, 256 << 10


def chunk_length(data, start, hard=16, easy=12):
    """The release format's rule: `hard` / `easy` top bits of h zero before / after the normal size (16 / 12)."""
    end = len(data) - start
    if end <= MIN:
        return end
    h, i = 0, MIN
    while i < min(NORMAL, end):
        h = ((h << 1) + GEAR[data[start + i]]) & MASK64
        i += 1
        if h >> (64 - hard) == 0:
            return i
    while i < min(MAX, end):
        h = ((h << 1) + GEAR[data[start + i]]) & MASK64
        i += 1
        if h >> (64 - easy) == 0:
            return i
    return min(MAX, end)


def boundaries(data):
    out, start = [], 0
    while start < len(data):
        start += chunk_length(data, start)
        out.append(start)
    return out


def known_answer_input():
    """1 MiB: SplitMix64 outputs (seed 1) as little-endian words, every second 4 KiB block masked to 0..15."""
    state, out = 1, bytearray()
    while len(out) < 1 << 20:
        state, value = splitmix64(state)
        out += value.to_bytes(8, "little")
    for block in range(0, len(out), 8192):
        for i in range(block, block + 4096):
            out[i] &= 0x0F
    return bytes(out)


if __name__ == "__main__":
    print(boundaries(known_answer_input()))
