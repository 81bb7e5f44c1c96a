/// Cuts a firmware image into chunks at content-defined boundaries (FastCDC-style gear hashing with normalized
/// chunking), so that an insertion or a change moves only the boundaries near it: the chunks of the rest of the
/// image keep their bytes, their ids, and need no transfer. See docs/release-format.md, "Chunking".
///
/// The rolling hash is `h = (h << 1) &+ gear[byte]`: after 64 bytes a byte has shifted out, so h depends only on
/// the last 64 bytes. A boundary falls after a byte where the top bits of h are all zero: 16 bits (harder)
/// before the chunk reaches `normalSize`, 12 bits (easier) after. About half the chunks end at a boundary their
/// content finds before the normal size; the rest pass it and end within 4 KiB on average, so chunks average
/// about 53 KiB and very few pass 84 KiB (a peer passes a chunk on only once it is whole, so large chunks slow
/// the end of a rollout). The content-found boundaries are what an edit's neighbours realign on: with 18 bits
/// before the normal size (5 chunks in 6 ending just past it, whatever their content), a 42,000-byte edit of
/// the sample firmware cost 257 KiB of new chunks on average, with 16 bits 155 KiB (100 seeded edits each:
/// bench/cdc_edits.py, bench/results/cdc-edits.txt).
/// The first `minimumSize` bytes of a chunk are never cut (nor hashed); a chunk that reaches
/// `maximumSize` is cut there.
public struct ContentDefinedChunker: Sendable {
    public let minimumSize: Int
    public let normalSize: Int
    public let maximumSize: Int

    /// The release format's parameters: 16 KiB minimum, 64 KiB normal, 256 KiB maximum.
    public static let release = ContentDefinedChunker(
        minimumSize: 16 << 10, normalSize: 64 << 10, maximumSize: 256 << 10)

    static let hardBits: UInt64 = 16
    static let easyBits: UInt64 = 12

    public init(minimumSize: Int, normalSize: Int, maximumSize: Int) {
        precondition(0 < minimumSize && minimumSize <= normalSize && normalSize <= maximumSize)
        self.minimumSize = minimumSize
        self.normalSize = normalSize
        self.maximumSize = maximumSize
    }

    /// The gear table: 256 outputs of SplitMix64 seeded with 0x4551_5549_4341_5354 ("EQUICAST" in ASCII).
    static let gear: [UInt64] = {
        var sm = SplitMix64(state: 0x4551_5549_4341_5354)
        var table: [UInt64] = []
        table.reserveCapacity(256)
        for _ in 0..<256 { table.append(sm.next()) }
        return table
    }()

    /// Length of the chunk that starts at the beginning of `bytes` (the rest of the image, or at least
    /// `maximumSize` bytes of it): at most `maximumSize`, and all of `bytes` when fewer than `minimumSize` remain.
    public func chunkLength(_ bytes: UnsafeRawBufferPointer) -> Int {
        let end = bytes.count
        if end <= minimumSize { return end }
        let gear = ContentDefinedChunker.gear
        let normalEnd = min(normalSize, end)
        let maximumEnd = min(maximumSize, end)
        var h: UInt64 = 0
        var i = minimumSize
        while i < normalEnd {
            h = (h << 1) &+ gear[Int(bytes[i])]
            i += 1
            if h >> (64 - ContentDefinedChunker.hardBits) == 0 { return i }
        }
        while i < maximumEnd {
            h = (h << 1) &+ gear[Int(bytes[i])]
            i += 1
            if h >> (64 - ContentDefinedChunker.easyBits) == 0 { return i }
        }
        return maximumEnd
    }

    /// Every chunk of `bytes`, in order, as ranges that together cover it exactly.
    public func chunks(_ bytes: UnsafeRawBufferPointer) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        while start < bytes.count {
            let length = chunkLength(UnsafeRawBufferPointer(rebasing: bytes[start...]))
            out.append(start..<(start + length))
            start += length
        }
        return out
    }

    public func chunks(_ bytes: [UInt8]) -> [Range<Int>] {
        bytes.withUnsafeBytes { chunks($0) }
    }
}
