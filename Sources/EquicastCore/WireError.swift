/// Why a frame or message was refused. Every decoder in the core reports hostile or damaged input through this
/// type and never traps; the daemon counts each kind (decode errors, authentication failures, replays).
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended inside `field`: `needed` bytes were required at that point, `available` were left.
    case truncated(field: String, needed: Int, available: Int)
    /// The first byte names a protocol version this build does not speak.
    case unsupportedVersion(UInt8)
    /// The profile byte is not one this build knows (only Lite exists today).
    case unknownProfile(UInt8)
    /// The message class byte is outside the append-only list.
    case unknownMessageClass(UInt8)
    /// Flag bits that this version does not define were set.
    case unknownFlags(UInt8)
    /// A length field exceeds its named limit.
    case lengthOverLimit(field: String, length: Int, limit: Int)
    /// The declared body is shorter than the 16-byte tag every body ends with.
    case bodyTooShort(length: Int)
    /// The declared body length disagrees with the bytes that arrived.
    case lengthMismatch(declared: Int, actual: Int)
    /// The key id in the header is not in this node's keyring (another fleet, or a retired key).
    case unknownKeyID(UInt32)
    /// The AEAD tag or MAC did not verify: altered in transit, or sealed with another key.
    case authenticationFailed(sender: NodeID)
    /// An authenticated-only frame arrived while this node requires encryption.
    case encryptionRequired(sender: NodeID)
    /// The sequence number was already accepted from this sender.
    case replayed(sender: NodeID, sequence: UInt64)
    /// The sequence number is older than this sender's replay window.
    case staleSequence(sender: NodeID, sequence: UInt64)
    /// Bytes were left after a complete message.
    case trailingBytes(count: Int)
    /// The message type byte (inside an authenticated frame) is outside the append-only list.
    case unknownMessageType(UInt8)
    /// A value is outside the range its field allows.
    case invalidValue(field: String, value: UInt64)

    public var description: String {
        switch self {
        case .truncated(let field, let needed, let available):
            return "truncated at \(field): needed \(needed) bytes, \(available) left"
        case .unsupportedVersion(let v):
            return "unsupported protocol version \(v)"
        case .unknownProfile(let p):
            return "unknown protocol profile \(p)"
        case .unknownMessageClass(let c):
            return "unknown message class \(c)"
        case .unknownFlags(let f):
            return "undefined flag bits set: 0x\(hexByte(f))"
        case .lengthOverLimit(let field, let length, let limit):
            return "\(field) of \(length) bytes is over the limit of \(limit)"
        case .bodyTooShort(let length):
            return "frame body of \(length) bytes is shorter than its 16-byte tag"
        case .lengthMismatch(let declared, let actual):
            return "frame declares a \(declared)-byte body but \(actual) bytes follow the header"
        case .unknownKeyID(let id):
            return "unknown fleet key id 0x\(hexWord(id))"
        case .authenticationFailed(let sender):
            return "authentication failed for a frame claiming to be from \(sender)"
        case .encryptionRequired(let sender):
            return "unencrypted frame from \(sender) refused: this node requires encryption"
        case .replayed(let sender, let seq):
            return "replayed frame from \(sender), sequence \(seq)"
        case .staleSequence(let sender, let seq):
            return "stale frame from \(sender), sequence \(seq) is behind the replay window"
        case .trailingBytes(let count):
            return "\(count) unexpected bytes after the message"
        case .unknownMessageType(let t):
            return "unknown message type \(t)"
        case .invalidValue(let field, let value):
            return "invalid \(field): \(value)"
        }
    }
}

/// Two lowercase hex digits.
func hexByte(_ b: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    var s = ""
    s.append(digits[Int(b >> 4)])
    s.append(digits[Int(b & 0xf)])
    return s
}

/// Eight lowercase hex digits.
func hexWord(_ w: UInt32) -> String {
    hexByte(UInt8(w >> 24)) + hexByte(UInt8((w >> 16) & 0xff)) + hexByte(UInt8((w >> 8) & 0xff))
        + hexByte(UInt8(w & 0xff))
}

/// Lowercase hex of a byte string.
public func hexString(_ bytes: [UInt8]) -> String {
    var s = ""
    for b in bytes { s += hexByte(b) }
    return s
}
