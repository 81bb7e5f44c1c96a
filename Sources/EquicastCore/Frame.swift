/// The frame every Equicast message travels in, on UDP and on TCP alike. The byte layout is specified in
/// docs/protocol.md; this file is its executable form.
///
/// ```
///  0   1  version        ProtocolVersion (1)
///  1   1  profile        Profile (1 = Lite)
///  2   1  class          MessageClass
///  3   1  flags          FrameFlags
///  4   4  key id         which fleet key sealed the frame
///  8   8  sender         NodeID of the sender
/// 16   8  sequence       per-sender sequence number (replay protection)
/// 24  24  nonce          XChaCha20-Poly1305 nonce (random per frame)
/// 48   4  body length    bytes after the header, tag included
/// 52   -  body           sealed: ciphertext || 16-byte tag; authenticated-only: plaintext || 16-byte MAC
/// ```
/// All integers are big-endian. The whole header is authenticated (AEAD additional data, or MAC input).
public enum Frame {
    /// Header bytes before the body.
    public static let headerByteCount = 52
    /// Tag (AEAD) or MAC bytes at the end of every body.
    public static let tagByteCount = 16
    /// Bytes of every frame that are not payload.
    public static let overheadByteCount = headerByteCount + tagByteCount
}

/// Protocol versions. APPEND ONLY: a value, once shipped, keeps its meaning forever.
public enum ProtocolVersion: UInt8, Sendable {
    case v1 = 1
    public static let current = ProtocolVersion.v1
}

/// Protocol profiles. APPEND ONLY. Lite: no TLS, no vector clocks; AEAD on every frame.
public enum Profile: UInt8, Sendable {
    case lite = 1
}

/// The three Equicast message classes. APPEND ONLY.
public enum MessageClass: UInt8, CaseIterable, Sendable {
    /// Membership, gossip and control traffic.
    case control = 0
    /// Bulk data: manifests, bitfields, chunks.
    case data = 1
    /// Acknowledgements.
    case ack = 2
}

/// Frame flag bits. APPEND ONLY; a receiver refuses bits it does not know.
public struct FrameFlags: Equatable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Body is XChaCha20-Poly1305 ciphertext. Clear: body is plaintext followed by a keyed BLAKE2b MAC.
    public static let encrypted = FrameFlags(rawValue: 0x01)
    /// Every bit defined by this version.
    public static let known = FrameFlags(rawValue: 0x01)

    public func contains(_ other: FrameFlags) -> Bool { rawValue & other.rawValue == other.rawValue }
}

/// Limits on frame sizes. Named so that decoders and tests agree on them.
public struct FrameLimits: Equatable, Sendable {
    /// Largest body a datagram may carry. Senders keep gossip within `datagramPayloadBudget`; receivers accept
    /// up to this so a peer with a larger MTU is not refused.
    public var datagramBodyByteCountMax: Int
    /// Largest body on a TCP stream: a chunk (at most 256 KiB before compression, deflate adds < 0.1%) plus
    /// its message header, with room to spare.
    public var streamBodyByteCountMax: Int

    public init(datagramBodyByteCountMax: Int, streamBodyByteCountMax: Int) {
        self.datagramBodyByteCountMax = datagramBodyByteCountMax
        self.streamBodyByteCountMax = streamBodyByteCountMax
    }

    public static let standard = FrameLimits(datagramBodyByteCountMax: 8192, streamBodyByteCountMax: 512 * 1024)

    /// A sender's payload budget for one gossip datagram: 1280 (the IPv6 minimum MTU) less IPv6 and UDP headers
    /// (48) less frame overhead (68), so a datagram never fragments on any path.
    public static let datagramPayloadBudget = 1280 - 48 - Frame.overheadByteCount

    /// A sender's payload budget for one stream frame: the body limit less the frame overhead.
    public static let streamPayloadBudget = FrameLimits.standard.streamBodyByteCountMax - Frame.overheadByteCount
}

/// The clear header of a frame, as decoded (or about to be encoded).
public struct FrameHeader: Equatable, Sendable {
    public var version: ProtocolVersion
    public var profile: Profile
    public var messageClass: MessageClass
    public var flags: FrameFlags
    public var keyID: UInt32
    public var sender: NodeID
    public var sequence: UInt64
    public var nonce: [UInt8]
    public var bodyLength: UInt32

    public init(
        version: ProtocolVersion = .current, profile: Profile = .lite, messageClass: MessageClass,
        flags: FrameFlags, keyID: UInt32, sender: NodeID, sequence: UInt64, nonce: [UInt8], bodyLength: UInt32
    ) {
        self.version = version
        self.profile = profile
        self.messageClass = messageClass
        self.flags = flags
        self.keyID = keyID
        self.sender = sender
        self.sequence = sequence
        self.nonce = nonce
        self.bodyLength = bodyLength
    }

    /// Appends the 52 header bytes.
    func encode(into w: inout ByteWriter) {
        w.write(version.rawValue)
        w.write(profile.rawValue)
        w.write(messageClass.rawValue)
        w.write(flags.rawValue)
        w.write(keyID)
        w.write(sender.rawValue)
        w.write(sequence)
        w.write(nonce)
        w.write(bodyLength)
    }

    /// Decodes and validates a header, field by field, so that a truncated input names the field it ended in.
    static func decode(_ r: inout ByteReader, bodyLimit: Int) throws(WireError) -> FrameHeader {
        let v = try r.readUInt8("version")
        guard let version = ProtocolVersion(rawValue: v) else { throw .unsupportedVersion(v) }
        let p = try r.readUInt8("profile")
        guard let profile = Profile(rawValue: p) else { throw .unknownProfile(p) }
        let c = try r.readUInt8("message class")
        guard let messageClass = MessageClass(rawValue: c) else { throw .unknownMessageClass(c) }
        let f = try r.readUInt8("flags")
        if f & ~FrameFlags.known.rawValue != 0 { throw .unknownFlags(f) }
        let keyID = try r.readUInt32("key id")
        let sender = NodeID(rawValue: try r.readUInt64("sender"))
        let sequence = try r.readUInt64("sequence")
        let nonce = try r.readBytes(24, "nonce")
        let bodyLength = try r.readUInt32("body length")
        if Int(bodyLength) > bodyLimit {
            throw .lengthOverLimit(field: "body length", length: Int(bodyLength), limit: bodyLimit)
        }
        if Int(bodyLength) < Frame.tagByteCount {
            throw .bodyTooShort(length: Int(bodyLength))
        }
        return FrameHeader(
            version: version, profile: profile, messageClass: messageClass, flags: FrameFlags(rawValue: f),
            keyID: keyID, sender: sender, sequence: sequence, nonce: nonce, bodyLength: bodyLength)
    }
}
