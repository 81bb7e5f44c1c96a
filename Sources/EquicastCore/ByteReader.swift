/// A bounded, big-endian reader over received bytes. Every read checks the remaining length first and reports
/// the field it was reading, so a hostile input produces `WireError.truncated(field:...)` instead of a trap.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    public let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
        self.end = bytes.count
    }

    /// A reader over `bytes[range]`.
    public init(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        self.bytes = bytes
        self.offset = range.lowerBound
        self.end = range.upperBound
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset == end }

    @inline(__always)
    private func require(_ count: Int, _ field: String) throws(WireError) {
        if count > remaining { throw .truncated(field: field, needed: count, available: remaining) }
    }

    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try require(1, field)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        try require(2, field)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        try require(4, field)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try require(8, field)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    /// Reads exactly `count` bytes.
    public mutating func readBytes(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        if count < 0 { throw .invalidValue(field: field, value: 0) }
        try require(count, field)
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Skips `count` bytes, returning the range they occupied.
    public mutating func skip(_ count: Int, _ field: String) throws(WireError) -> Range<Int> {
        try require(count, field)
        defer { offset += count }
        return offset..<(offset + count)
    }

    /// Reads a 16-bit length prefix and that many bytes, refusing lengths over `limit`.
    public mutating func readLengthPrefixed(_ field: String, limit: Int) throws(WireError) -> [UInt8] {
        let length = Int(try readUInt16(field))
        if length > limit { throw .lengthOverLimit(field: field, length: length, limit: limit) }
        return try readBytes(length, field)
    }
}

/// Big-endian writer; the counterpart of `ByteReader`. Writes go into storage grown ahead of them (one check per
/// field, not an array append per byte run), which `bytes` hands over, trimmed if it was sized too large.
public struct ByteWriter {
    private var storage: [UInt8]
    public private(set) var count = 0

    /// - Parameter capacity: the expected size; an exact one spares `bytes` a copy.
    public init(capacity: Int = 64) {
        storage = [UInt8](repeating: 0, count: max(capacity, 1))
    }

    public var bytes: [UInt8] { count == storage.count ? storage : Array(storage[0..<count]) }

    private mutating func reserve(_ n: Int) {
        if count + n > storage.count {
            storage.append(contentsOf: repeatElement(0, count: max(storage.count, count + n - storage.count)))
        }
    }

    public mutating func write(_ v: UInt8) {
        reserve(1)
        storage[count] = v
        count += 1
    }

    public mutating func write(_ v: UInt16) { store(v.bigEndian) }

    public mutating func write(_ v: UInt32) { store(v.bigEndian) }

    public mutating func write(_ v: UInt64) { store(v.bigEndian) }

    private mutating func store<T: FixedWidthInteger>(_ v: T) {
        let n = MemoryLayout<T>.size
        reserve(n)
        let at = count
        storage.withUnsafeMutableBytes { $0.storeBytes(of: v, toByteOffset: at, as: T.self) }
        count += n
    }

    public mutating func write(_ b: [UInt8]) {
        guard !b.isEmpty else { return }
        reserve(b.count)
        let at = count
        storage.withUnsafeMutableBytes { dst in
            b.withUnsafeBytes { src in
                dst.baseAddress!.advanced(by: at).copyMemory(from: src.baseAddress!, byteCount: src.count)
            }
        }
        count += b.count
    }

    /// Writes a 16-bit length prefix and the bytes; the caller guarantees `b.count` fits its field's limit.
    public mutating func writeLengthPrefixed(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt16.max), "length-prefixed field over 65535 bytes")
        write(UInt16(b.count))
        write(b)
    }

    /// Overwrites a 32-bit big-endian value at `offset` (for lengths known only after the body is written).
    public mutating func patch(_ v: UInt32, at offset: Int) {
        precondition(offset + 4 <= count)
        for i in 0..<4 { storage[offset + i] = UInt8((v >> UInt32(24 - 8 * i)) & 0xff) }
    }
}
