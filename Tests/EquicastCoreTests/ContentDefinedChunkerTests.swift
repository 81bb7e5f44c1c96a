import EquicastCore
import Testing

@Suite struct ContentDefinedChunkerTests {
    static func splitMixBytes(count: Int, seed: UInt64) -> [UInt8] {
        var sm = SplitMix64(state: seed)
        var out: [UInt8] = []
        out.reserveCapacity(count + 8)
        while out.count < count {
            let z = sm.next()
            for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: z >> (8 * UInt64(k)))) }
        }
        return Array(out.prefix(count))
    }

    /// The known-answer input of Tests/vectors/cdc_reference.py: 1 MiB of SplitMix64 words (seed 1, little
    /// endian), every second 4 KiB block masked to 0...15.
    static func knownAnswerInput() -> [UInt8] {
        var bytes = splitMixBytes(count: 1 << 20, seed: 1)
        for block in stride(from: 0, to: bytes.count, by: 8192) {
            for i in block..<(block + 4096) { bytes[i] &= 0x0f }
        }
        return bytes
    }

    /// Boundaries printed by Tests/vectors/cdc_reference.py, an independent Python implementation written from
    /// docs/release-format.md: a change to the chunker that would change every release's chunk ids fails here.
    @Test func matchesTheReferenceImplementation() {
        let expected = [
            72273, 140218, 176827, 222984, 302337, 369575, 392150, 433235, 465769, 521261, 558271, 628671, 664694,
            721973, 780514, 843305, 914882, 989378, 1_048_576,
        ]
        let input = ContentDefinedChunkerTests.knownAnswerInput()
        #expect(ContentDefinedChunker.release.chunks(input).map(\.upperBound) == expected)
    }

    /// Firmware-like input: blocks of skewed bytes, text, zeros and random bytes, from a seed.
    static func firmwareLike(count: Int, seed: UInt64) -> [UInt8] {
        var rng = DeterministicRandom(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            switch rng.below(4) {
            case 0: out += rng.bytes(4096).map { $0 & 0x3f }
            case 1: out += [UInt8](repeating: 0, count: 4096)
            case 2: out += Array("gateway sensor firmware update boot \(rng.below(1000)) ".utf8.prefix(64))
            default: out += rng.bytes(4096)
            }
        }
        return Array(out.prefix(count))
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func chunksCoverTheInputWithinTheBounds(seed: UInt64) {
        let c = ContentDefinedChunker.release
        let bytes = ContentDefinedChunkerTests.firmwareLike(count: 3 << 20, seed: seed)
        let chunks = c.chunks(bytes)
        #expect(chunks.first?.lowerBound == 0)
        #expect(chunks.last?.upperBound == bytes.count)
        for (a, b) in zip(chunks, chunks.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        for r in chunks.dropLast() { #expect(r.count >= c.minimumSize && r.count <= c.maximumSize) }
        #expect(chunks.last!.count <= c.maximumSize)
        // Long runs of zeros never cut (the hash stays put), so they are cut at the maximum.
        let zeros = c.chunks([UInt8](repeating: 0, count: 1 << 20))
        #expect(zeros.dropLast().allSatisfy { $0.count == c.maximumSize })
        let mean = bytes.count / chunks.count
        #expect(mean > 40 << 10 && mean < 110 << 10, "mean chunk \(mean) bytes")
    }

    @Test func emptyAndShortInputs() {
        let c = ContentDefinedChunker.release
        #expect(c.chunks([]).isEmpty)
        #expect(c.chunks([7]) == [0..<1])
        #expect(c.chunks([UInt8](repeating: 1, count: c.minimumSize)) == [0..<c.minimumSize])
    }

    /// One edit to a 4 MiB image (each case: what is done, where, how many bytes): only the chunks around the
    /// edit change, so an update transfers a few chunks, not the image.
    @Test(arguments: [
        ("insert", 0, 1), ("insert", 1_000_000, 1), ("insert", 2_500_000, 100), ("insert", 3_000_003, 5000),
        ("delete", 1_234_567, 1), ("delete", 2_000_000, 3000), ("overwrite", 700_000, 4096),
        ("overwrite", 4_194_000, 304), ("append", 4_194_304, 10_000),
    ])
    func editsChangeOnlyNearbyChunks(edit: String, offset: Int, length: Int) {
        let c = ContentDefinedChunker.release
        let original = ContentDefinedChunkerTests.firmwareLike(count: 4 << 20, seed: 9)
        var edited = original
        let filler = DeterministicRandom(seed: UInt64(offset)).bytesArray(length)
        switch edit {
        case "insert", "append": edited.insert(contentsOf: filler, at: offset)
        case "delete": edited.removeSubrange(offset..<(offset + length))
        default: edited.replaceSubrange(offset..<(offset + length), with: filler)
        }
        let before = Set(c.chunks(original).map { Array(original[$0]) })
        let after = c.chunks(edited)
        let changed = after.filter { !before.contains(Array(edited[$0])) }
        #expect(
            changed.count >= 1 && changed.count <= 3,
            "\(edit) at \(offset): \(changed.count) of \(after.count) chunks new")
        let newBytes = changed.reduce(0) { $0 + $1.count }
        #expect(newBytes <= length + 3 * c.maximumSize)
    }
}

extension DeterministicRandom {
    func bytesArray(_ n: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(n)
    }
}
