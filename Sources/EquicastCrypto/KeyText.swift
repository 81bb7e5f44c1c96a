import CSodium

/// The text form of a key file: one key, as hex or as standard base64, optionally followed by a newline.
/// Comments and several keys per file are deliberately not supported: a key file holds exactly one secret, so
/// there is nothing to misread.
public enum KeyText {
    /// Largest key text accepted (a 64-byte key in hex is 128 characters; leave room for whitespace).
    public static let textByteCountMax = 512

    /// Decodes key text into exactly `byteCount` bytes, accepting lowercase/uppercase hex or base64.
    public static func decode(_ text: [UInt8], byteCount: Int) throws(CryptoError) -> [UInt8] {
        guard text.count <= textByteCountMax else {
            throw .malformedKeyText("longer than \(textByteCountMax) bytes; a key file holds a single key")
        }
        var start = 0
        var end = text.count
        while start < end, isSpace(text[start]) { start += 1 }
        while end > start, isSpace(text[end - 1]) { end -= 1 }
        let body = Array(text[start..<end])
        if body.isEmpty { throw .malformedKeyText("the file is empty") }
        if let inner = body.firstIndex(where: isSpace) {
            throw .malformedKeyText("unexpected whitespace at character \(inner + 1); expected one key on one line")
        }
        if body.count == byteCount * 2, body.allSatisfy(isHexDigit) {
            return try decodeHex(body, byteCount: byteCount)
        }
        if body.allSatisfy(isHexDigit) {
            throw .malformedKeyText(
                "hex key has \(body.count) digits; a \(byteCount)-byte key needs \(byteCount * 2)")
        }
        if let bad = body.firstIndex(where: { !isBase64Character($0) }) {
            throw .malformedKeyText("character \(bad + 1) is neither hex nor base64")
        }
        return try decodeBase64(body, byteCount: byteCount)
    }

    /// Encodes a key as lowercase hex followed by a newline, the form `equicast keygen` writes.
    public static func encodeHex(_ key: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(key.count * 2 + 1)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        for b in key {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    private static func decodeHex(_ body: [UInt8], byteCount: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        var written = 0
        let status = out.withUnsafeMutableBufferPointer { o in
            body.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { chars in
                    sodium_hex2bin(o.baseAddress!, byteCount, chars, b.count, nil, &written, nil)
                }
            }
        }
        guard status == 0, written == byteCount else { throw .malformedKeyText("invalid hex") }
        return out
    }

    private static func decodeBase64(_ body: [UInt8], byteCount: Int) throws(CryptoError) -> [UInt8] {
        // Base64 never decodes to more bytes than it has characters: room for any length, so an over-long key is
        // reported with its real length rather than as invalid text.
        var out = [UInt8](repeating: 0, count: body.count)
        var written = 0
        let status = out.withUnsafeMutableBufferPointer { o in
            body.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { chars in
                    sodium_base642bin(
                        o.baseAddress!, o.count, chars, b.count, nil, &written, nil,
                        sodium_base64_VARIANT_ORIGINAL)
                }
            }
        }
        guard status == 0 else { throw .malformedKeyText("invalid base64 (standard alphabet, with padding)") }
        guard written == byteCount else {
            throw .wrongLength(what: "key", expected: byteCount, found: written)
        }
        out.removeSubrange(byteCount...)
        return out
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d }
    private static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }
    private static func isBase64Character(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2b || c == 0x2f
            || c == 0x3d
    }
}
