/// Which chunks of a release a node holds, verified: one bit per chunk in manifest order, bit 7 of byte 0 is
/// chunk 0 (the BitTorrent convention). Sent in `haves` messages; ceil(count / 8) bytes, so a release of 6,000
/// chunks costs 750 bytes and fits one datagram.
public struct ChunkBitfield: Equatable, Sendable {
    public let count: Int
    public private(set) var bytes: [UInt8]
    /// How many bits are set.
    public private(set) var setCount: Int

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        self.bytes = [UInt8](repeating: 0, count: (count + 7) / 8)
        self.setCount = 0
    }

    /// A bitfield from its wire bytes; nil when the length is wrong for `count` or a padding bit is set.
    public init?(count: Int, bytes: [UInt8]) {
        guard count >= 0, bytes.count == (count + 7) / 8 else { return nil }
        if count % 8 != 0, let last = bytes.last, last & (0xff >> UInt8(count % 8)) != 0 { return nil }
        self.count = count
        self.bytes = bytes
        var n = 0
        for b in bytes { n += b.nonzeroBitCount }
        self.setCount = n
    }

    public static func full(count: Int) -> ChunkBitfield {
        var b = ChunkBitfield(count: count)
        for i in 0..<count { b.insert(i) }
        return b
    }

    public var isComplete: Bool { setCount == count }
    public var isEmpty: Bool { setCount == 0 }

    public func contains(_ i: Int) -> Bool {
        guard i >= 0 && i < count else { return false }
        return bytes[i >> 3] & (0x80 >> UInt8(i & 7)) != 0
    }

    public mutating func insert(_ i: Int) {
        precondition(i >= 0 && i < count)
        let mask: UInt8 = 0x80 >> UInt8(i & 7)
        if bytes[i >> 3] & mask == 0 {
            bytes[i >> 3] |= mask
            setCount += 1
        }
    }

    public mutating func remove(_ i: Int) {
        precondition(i >= 0 && i < count)
        let mask: UInt8 = 0x80 >> UInt8(i & 7)
        if bytes[i >> 3] & mask != 0 {
            bytes[i >> 3] &= ~mask
            setCount -= 1
        }
    }
}
