/// Text handling by UTF-8 bytes for device code. Everything the agent parses (config keys and values, command
/// lines, control requests, its own state files, product strings) is matched on ASCII separators and keywords,
/// for which comparing bytes gives the same answers as comparing Characters. Doing it by bytes keeps the
/// standard library's Unicode normalization and grapheme-breaking tables (about 40 KiB) out of the Embedded
/// binary: they are linked as soon as device code compares two Strings or walks one Character by Character.
/// Text that is not ASCII passes through unchanged; it is just never equal to a keyword.
extension String {
    /// Byte-for-byte equality (no canonical equivalence: "é" precomposed and decomposed differ).
    public func sameBytes(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }

    public func hasBytePrefix(_ prefix: String) -> Bool { utf8.starts(with: prefix.utf8) }

    /// The pieces between every `separator` byte (an ASCII character), empty ones included unless
    /// `omittingEmpty`.
    public func splitBytes(_ separator: UInt8, omittingEmpty: Bool = false) -> [String] {
        var pieces: [String] = []
        var piece: [UInt8] = []
        for b in utf8 {
            if b == separator {
                if !(omittingEmpty && piece.isEmpty) { pieces.append(String(decoding: piece, as: UTF8.self)) }
                piece.removeAll(keepingCapacity: true)
            } else {
                piece.append(b)
            }
        }
        if !(omittingEmpty && piece.isEmpty) { pieces.append(String(decoding: piece, as: UTF8.self)) }
        return pieces
    }

    /// The text before the first `separator` byte and the text after it; nil when there is none.
    public func cut(at separator: UInt8) -> (before: String, after: String)? {
        let bytes = Array(utf8)
        guard let i = bytes.firstIndex(of: separator) else { return nil }
        return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
    }

    /// Without leading and trailing spaces, tabs and carriage returns.
    public var trimmingBlanks: String {
        let bytes = Array(utf8)
        func blank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0d }
        var start = 0
        var end = bytes.count
        while start < end && blank(bytes[start]) { start += 1 }
        while end > start && blank(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// With ASCII capitals made small and everything else left alone (`lowercased()` would link the Unicode
    /// case tables, another 17 KiB).
    public var asciiLowercased: String {
        var bytes = Array(utf8)
        for i in bytes.indices where bytes[i] >= 0x41 && bytes[i] <= 0x5a { bytes[i] += 0x20 }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `switch` over a String matches its cases byte for byte (see above). Without this, a `case "literal":`
/// compares with the standard library's `==`, which links the normalization tables.
public func ~= (pattern: String, value: String) -> Bool { pattern.sameBytes(value) }

/// The `key=value` lines of a small text file the agent wrote itself (blank lines skipped, blanks around key
/// and value trimmed); nil when a line has no `=`.
public func keyValueLines(_ text: String) -> [(key: String, value: String)]? {
    var out: [(key: String, value: String)] = []
    for line in text.splitBytes(0x0a, omittingEmpty: true) {
        guard let (key, value) = line.cut(at: 0x3d) else {
            if line.trimmingBlanks.isEmpty { continue }
            return nil
        }
        out.append((key.trimmingBlanks, value.trimmingBlanks))
    }
    return out
}
