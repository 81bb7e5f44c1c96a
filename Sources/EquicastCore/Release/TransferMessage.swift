import EquicastCrypto

/// Release transfer message types, the payload of `data`-class frames. APPEND ONLY.
public enum TransferType: UInt8, Sendable, CaseIterable {
    /// Datagram: which chunks of a release the sender holds or has begun to receive (it passes those on as their
    /// pieces arrive). A receiver that holds the release and has not told the sender lately answers with its own.
    case haves = 1
    /// Stream: "send me this release's manifest".
    case manifestRequest = 2
    /// Stream: the signed manifest, or nothing when the responder does not hold it.
    case manifestReply = 3
    /// Stream: "send me chunk `index` of this release, from piece `piece` on". Answered with the chunk's pieces.
    case chunkRequest = 4
    /// Stream: "no (more) pieces of chunk `index` from me" (not held, or arriving here from the requester itself);
    /// carries no bytes.
    case chunkReply = 5
    /// Stream, operator to node: a signed manifest handed over by `equicast rollout push`.
    case push = 6
    /// Stream, operator to node: one chunk of a pushed release.
    case pushChunk = 7
    /// Stream, node to operator: the answer to a push or a pushed chunk.
    case pushReply = 8
    /// Stream, operator to node: "what do you know of the fleet's firmware?"
    case statusRequest = 9
    /// Stream: every node status the responder knows, itself first, with the release it is spreading.
    case statusReply = 10
    /// Stream: one piece of a chunk, in answer to a chunk request; the pieces of one chunk follow each other
    /// from the piece asked for to the chunk's last.
    case chunkPiece = 11
}

/// How a node answered a push.
public enum PushResult: UInt8, Sendable {
    /// The manifest is accepted (or the chunk verified and stored); the reply's bitfield says what is missing.
    case accepted = 0
    /// Refused; the reply's reason says why (bad signature, unknown signer, chunk does not match its id, ...).
    case refused = 1
}

/// A decoded release transfer message (`MessageClass.data`). Which fields are meaningful depends on `type`; the
/// layout of each is in docs/protocol.md.
public struct TransferMessage: Equatable, Sendable {
    public var type: TransferType
    public var releaseID: Digest256
    public var index: UInt16
    /// Chunk requests: the first piece wanted; chunk pieces: which piece of the chunk this is.
    public var piece: UInt16
    /// Haves and push replies: the sender's bitfield.
    public var haves: ChunkBitfield?
    /// Haves: the sender wants the receiver's bitfield in return.
    public var wantsReply: Bool
    /// Manifest replies, chunk pieces, pushes: the bytes (a manifest reply: empty when the responder does not hold it).
    public var payload: [UInt8]
    public var pushResult: PushResult
    /// Push replies: why a push was refused.
    public var reason: String
    /// Status replies.
    public var statuses: [NodeStatus]
    /// Status replies: the release the responder is spreading, if any.
    public var advert: ReleaseAdvert?

    public init(
        type: TransferType, releaseID: Digest256 = TransferMessage.noRelease, index: UInt16 = 0, piece: UInt16 = 0,
        haves: ChunkBitfield? = nil, wantsReply: Bool = false, payload: [UInt8] = [],
        pushResult: PushResult = .accepted,
        reason: String = "", statuses: [NodeStatus] = [], advert: ReleaseAdvert? = nil
    ) {
        self.type = type
        self.releaseID = releaseID
        self.index = index
        self.piece = piece
        self.haves = haves
        self.wantsReply = wantsReply
        self.payload = payload
        self.pushResult = pushResult
        self.reason = reason
        self.statuses = statuses
        self.advert = advert
    }

    public static let noRelease = Digest256(bytes: [UInt8](repeating: 0, count: 32))!
    /// Bytes before a reply's payload: type, release id, index, payload length.
    static let replyHeaderByteCount = 1 + 32 + 2 + 4
    public static let reasonByteCountMax = 200

    /// A reason's UTF-8, cut to `reasonByteCountMax` bytes at a character boundary (before a byte that
    /// continues a character, 0b10xxxxxx, is never a place to cut).
    static func reasonBytes(_ reason: String) -> [UInt8] {
        var bytes = Array(reason.utf8)
        if bytes.count > reasonByteCountMax {
            var end = reasonByteCountMax
            while end > 0 && bytes[end] & 0xc0 == 0x80 { end -= 1 }
            bytes.removeSubrange(end...)
        }
        return bytes
    }

    /// Statuses one reply carries: what fits a stream frame.
    public static let statusesMax = (FrameLimits.streamPayloadBudget - 128) / NodeStatus.encodedByteCount

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + payload.count + (haves?.bytes.count ?? 0))
        w.write(type.rawValue)
        switch type {
        case .haves:
            w.write(releaseID.bytes)
            let h = haves ?? ChunkBitfield(count: 0)
            w.write(UInt16(h.count))
            w.write(UInt8(wantsReply ? 1 : 0))
            w.write(h.bytes)
        case .manifestRequest:
            w.write(releaseID.bytes)
        case .chunkRequest:
            w.write(releaseID.bytes)
            w.write(index)
            w.write(piece)
        case .chunkPiece:
            w.write(releaseID.bytes)
            w.write(index)
            w.write(piece)
            w.write(UInt32(payload.count))
            w.write(payload)
        case .manifestReply, .chunkReply, .pushChunk:
            w.write(releaseID.bytes)
            w.write(index)
            w.write(UInt32(payload.count))
            w.write(payload)
        case .push:
            w.write(UInt32(payload.count))
            w.write(payload)
        case .pushReply:
            w.write(pushResult.rawValue)
            w.writeLengthPrefixed(TransferMessage.reasonBytes(reason))
            let h = haves ?? ChunkBitfield(count: 0)
            w.write(UInt16(h.count))
            w.write(h.bytes)
        case .statusRequest:
            break
        case .statusReply:
            if let a = advert {
                w.write(UInt8(1))
                a.encode(into: &w)
            } else {
                w.write(UInt8(0))
            }
            w.write(UInt32(statuses.count))
            for s in statuses { s.encode(into: &w) }
        }
        return w.bytes
    }

    /// Decodes a transfer message, refusing anything out of bounds or left over.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> TransferMessage {
        var r = ByteReader(bytes)
        let t = try r.readUInt8("transfer type")
        guard let type = TransferType(rawValue: t) else { throw .unknownMessageType(t) }
        var m = TransferMessage(type: type)
        switch type {
        case .haves:
            m.releaseID = try readReleaseID(&r)
            let count = Int(try r.readUInt16("chunk count"))
            guard count > 0 && count <= ReleaseManifest.chunksMax else {
                throw .invalidValue(field: "chunk count", value: UInt64(count))
            }
            let flags = try r.readUInt8("haves flags")
            guard flags <= 1 else { throw .invalidValue(field: "haves flags", value: UInt64(flags)) }
            m.wantsReply = flags == 1
            m.haves = try readBitfield(&r, count: count)
        case .manifestRequest:
            m.releaseID = try readReleaseID(&r)
        case .chunkRequest:
            m.releaseID = try readReleaseID(&r)
            m.index = try readIndex(&r)
            m.piece = try readPiece(&r)
        case .chunkPiece:
            m.releaseID = try readReleaseID(&r)
            m.index = try readIndex(&r)
            m.piece = try readPiece(&r)
            m.payload = try readPayload(&r)
        case .manifestReply, .chunkReply, .pushChunk:
            m.releaseID = try readReleaseID(&r)
            m.index = try readIndex(&r)
            m.payload = try readPayload(&r)
        case .push:
            m.payload = try readPayload(&r)
        case .pushReply:
            let code = try r.readUInt8("push result")
            guard let result = PushResult(rawValue: code) else {
                throw .invalidValue(field: "push result", value: UInt64(code))
            }
            m.pushResult = result
            let reason = try r.readLengthPrefixed("reason", limit: reasonByteCountMax)
            // Bytes that are not UTF-8 become replacement characters, which take more bytes: cut again, so that
            // the reason a node shows is the one it would send on.
            m.reason = String(
                decoding: TransferMessage.reasonBytes(String(decoding: reason, as: UTF8.self)), as: UTF8.self)
            let count = Int(try r.readUInt16("chunk count"))
            guard count <= ReleaseManifest.chunksMax else {
                throw .invalidValue(field: "chunk count", value: UInt64(count))
            }
            m.haves = try readBitfield(&r, count: count)
        case .statusRequest:
            break
        case .statusReply:
            let hasAdvert = try r.readUInt8("advert flag")
            guard hasAdvert <= 1 else { throw .invalidValue(field: "advert flag", value: UInt64(hasAdvert)) }
            if hasAdvert == 1 { m.advert = try ReleaseAdvert.decode(&r) }
            let count = Int(try r.readUInt32("status count"))
            if count > statusesMax { throw .lengthOverLimit(field: "status count", length: count, limit: statusesMax) }
            m.statuses.reserveCapacity(count)
            for _ in 0..<count { m.statuses.append(try NodeStatus.decode(&r)) }
        }
        if !r.isAtEnd { throw .trailingBytes(count: r.remaining) }
        return m
    }

    static func readReleaseID(_ r: inout ByteReader) throws(WireError) -> Digest256 {
        Digest256(bytes: try r.readBytes(32, "release id"))!
    }

    static func readIndex(_ r: inout ByteReader) throws(WireError) -> UInt16 {
        let i = try r.readUInt16("chunk index")
        guard Int(i) < ReleaseManifest.chunksMax else { throw .invalidValue(field: "chunk index", value: UInt64(i)) }
        return i
    }

    static func readPiece(_ r: inout ByteReader) throws(WireError) -> UInt16 {
        let p = try r.readUInt16("piece")
        guard Int(p) < ReleaseManifest.piecesMax else { throw .invalidValue(field: "piece", value: UInt64(p)) }
        return p
    }

    static func readPayload(_ r: inout ByteReader) throws(WireError) -> [UInt8] {
        let length = Int(try r.readUInt32("payload length"))
        let limit = FrameLimits.streamPayloadBudget - replyHeaderByteCount
        if length > limit { throw .lengthOverLimit(field: "payload length", length: length, limit: limit) }
        return try r.readBytes(length, "payload")
    }

    static func readBitfield(_ r: inout ByteReader, count: Int) throws(WireError) -> ChunkBitfield {
        let bytes = try r.readBytes((count + 7) / 8, "bitfield")
        guard let b = ChunkBitfield(count: count, bytes: bytes) else {
            throw .invalidValue(field: "bitfield padding", value: UInt64(bytes.last ?? 0))
        }
        return b
    }
}
