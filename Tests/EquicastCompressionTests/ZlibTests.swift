import EquicastCompression
import Testing

@Suite struct ZlibTests {
    static func sample(_ kind: String, count: Int) -> [UInt8] {
        switch kind {
        case "zeros": return [UInt8](repeating: 0, count: count)
        case "text":
            return Array(String(repeating: "Equicast firmware chunk ", count: count / 24 + 1).utf8.prefix(count))
        default:  // pseudo-random, incompressible
            var x: UInt64 = 0x9e37_79b9_7f4a_7c15
            return (0..<count).map { _ in
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                return UInt8(truncatingIfNeeded: x)
            }
        }
    }

    @Test(arguments: ["zeros", "text", "random"], [0, 1, 1000, 65536, 300_000])
    func roundTrips(kind: String, count: Int) throws {
        let input = ZlibTests.sample(kind, count: count)
        let compressed = Zlib.deflate(input)
        let limits = InflateLimits(outputByteCountMax: count, ratioMax: nil)
        #expect(try Zlib.inflate(compressed, limits: limits) == input)
    }

    @Test(arguments: [1, 2, 100, 4096, 70000])
    func streamingInflateInPiecesMatches(pieceSize: Int) throws {
        let input = ZlibTests.sample("text", count: 200_000)
        let compressed = Zlib.deflate(input)
        let inflater = Inflater(limits: .untrusted)
        var out: [UInt8] = []
        var i = 0
        while i < compressed.count {
            let end = min(compressed.count, i + pieceSize)
            try inflater.decompress(Array(compressed[i..<end])) { out.append(contentsOf: $0) }
            i = end
        }
        try inflater.finish()
        #expect(out == input)
        #expect(inflater.totalIn == compressed.count)
        #expect(inflater.totalOut == input.count)
    }

    @Test func streamingDeflateMatchesWhole() throws {
        let input = ZlibTests.sample("text", count: 100_000)
        let deflater = Deflater()
        var out: [UInt8] = []
        for start in stride(from: 0, to: input.count, by: 7000) {
            let piece = Array(input[start..<min(input.count, start + 7000)])
            deflater.compress(piece, finish: false) { out.append(contentsOf: $0) }
        }
        deflater.compress([UInt8](), finish: true) { out.append(contentsOf: $0) }
        #expect(try Zlib.inflate(out, limits: .untrusted) == input)
    }

    @Test func outputExactlyAtLimitIsAccepted() throws {
        let input = ZlibTests.sample("text", count: 5000)
        let out = try Zlib.inflate(Zlib.deflate(input), limits: InflateLimits(outputByteCountMax: 5000, ratioMax: nil))
        #expect(out.count == 5000)
    }

    /// A 64 MiB run of zeros compresses to about 64 KiB; inflating it must stop at the limit, not allocate 64 MiB.
    @Test func decompressionBombStopsAtOutputLimit() {
        let bomb = Zlib.deflate(ZlibTests.sample("zeros", count: 64 << 20), level: 9)
        #expect(bomb.count < 100_000)
        let inflater = Inflater(limits: InflateLimits(outputByteCountMax: 1 << 20, ratioMax: nil))
        var produced = 0
        #expect(throws: CompressionError.outputLimitExceeded(limit: 1 << 20)) {
            try inflater.decompress(bomb) { produced += $0.count }
        }
        #expect(produced <= 1 << 20)
        #expect(throws: CompressionError.outputLimitExceeded(limit: 1 << 20)) { try inflater.finish() }
    }

    @Test func decompressionBombStopsAtRatioLimit() {
        let bomb = Zlib.deflate(ZlibTests.sample("zeros", count: 8 << 20), level: 9)
        #expect(throws: CompressionError.ratioLimitExceeded(ratioMax: 200)) {
            try Zlib.inflate(bomb, limits: InflateLimits(outputByteCountMax: 1 << 30, ratioMax: 200))
        }
    }

    @Test func refusesTruncatedStream() {
        let compressed = Zlib.deflate(ZlibTests.sample("text", count: 10000))
        for cut in [0, 1, 2, compressed.count / 2, compressed.count - 1] {
            #expect(throws: CompressionError.truncatedInput) {
                try Zlib.inflate(Array(compressed.prefix(cut)), limits: .untrusted)
            }
        }
    }

    @Test func refusesTrailingBytes() {
        let compressed = Zlib.deflate(ZlibTests.sample("text", count: 1000)) + [1, 2, 3]
        #expect(throws: CompressionError.trailingData(count: 3)) { try Zlib.inflate(compressed, limits: .untrusted) }
    }

    @Test(arguments: [
        [UInt8]([0x00, 0x00, 0x00, 0x00]),  // bad header check
        [0x78, 0x9c, 0xff, 0xff, 0xff, 0xff],  // bad block type
        [0x78, 0xda, 0x03, 0x00, 0x00, 0x00, 0x00, 0x02],  // empty stream, wrong Adler-32
    ])
    func refusesCorruptData(input: [UInt8]) {
        do {
            _ = try Zlib.inflate(input, limits: .untrusted)
            Issue.record("corrupt input was accepted")
        } catch {
            guard case .corruptData = error else {
                Issue.record("expected corruptData, got \(error)")
                return
            }
        }
    }

    /// One bit flipped at every third byte of a stream: each is refused as corrupt, truncated or too large,
    /// or (if the flip happens to leave a valid stream) inflates to exactly the original within the limit.
    /// The undamaged stream inflates, so a wrapper that refused everything would fail here.
    @Test func flippedBitsAreRefusedOrHarmless() throws {
        let input = ZlibTests.sample("text", count: 20000)
        let compressed = Zlib.deflate(input)
        let limits = InflateLimits(outputByteCountMax: 20000, ratioMax: nil)
        #expect(try Zlib.inflate(compressed, limits: limits) == input)
        var refused = 0
        for i in stride(from: 0, to: compressed.count, by: 3) {
            var damaged = compressed
            damaged[i] ^= UInt8(1 << (i % 8))
            do throws(CompressionError) {
                let out = try Zlib.inflate(damaged, limits: limits)
                #expect(out == input, "a flip at byte \(i) inflated to other bytes")
            } catch {
                refused += 1
                switch error {
                case .corruptData, .truncatedInput, .outputLimitExceeded, .trailingData: break
                default: Issue.record("a flip at byte \(i) gave \(error)")
                }
            }
        }
        // The Adler-32 at the end catches what the decoder itself lets through: nearly every flip is refused.
        #expect(refused * 10 >= (compressed.count / 3) * 9)
    }
}
