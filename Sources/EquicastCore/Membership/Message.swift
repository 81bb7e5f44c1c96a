/// Membership message types, carried as the payload of a frame. APPEND ONLY.
public enum MessageType: UInt8, Sendable, CaseIterable {
    /// Direct probe; the target answers with `ack`.
    case ping = 1
    case ack = 2
    /// "Probe this target for me": sent to `IndirectChecks` members when a direct probe got no answer.
    case pingRequest = 3
    /// Piggybacked updates only.
    case gossip = 4
    /// Pull sync over TCP: the request carries the sender's own record and its bucket digests (none from a
    /// joining node, which asks to be introduced); the response carries the responder's records of every bucket
    /// whose digest differs, within a byte budget, or for a joiner a bounded introduction.
    case syncRequest = 5
    case syncResponse = 6
}

/// An application broadcast carried by gossip (an operator's control message; later, release announcements).
public struct GossipEvent: Equatable, Sendable {
    public var origin: NodeID
    /// Unique per origin (the origin's counter); (origin, id) deduplicates.
    public var id: UInt64
    public var payload: [UInt8]

    public static let payloadByteCountMax = 512

    public init(origin: NodeID, id: UInt64, payload: [UInt8]) {
        self.origin = origin
        self.id = id
        self.payload = payload
    }
}

/// Something gossip carries: a member change or an application event.
public enum GossipItem: Equatable, Sendable {
    case member(MemberUpdate)
    case event(GossipEvent)
    /// A release this node holds and spreads (announced when its manifest is verified, then by Trickle).
    case release(ReleaseAdvert)
    /// A node's firmware and update progress.
    case status(NodeStatus)

    /// Encoded size in bytes, for packing items into a datagram budget.
    public var encodedByteCount: Int {
        switch self {
        case .member(let u):
            return 1 + 1 + 8 + 8 + 8 + 1 + (u.address.family == .ipv4 ? 4 : 16) + 2
                + (u.proof == nil ? 0 : MemberProof.encodedByteCount)
        case .event(let e): return 1 + 8 + 8 + 2 + e.payload.count
        case .release: return 1 + ReleaseAdvert.encodedByteCount
        case .status(let st): return 1 + NodeStatus.encodedByteCount + st.signature.count
        }
    }
}

/// A decoded membership message.
public struct Message: Equatable, Sendable {
    public var type: MessageType
    /// The sender's view digest (see `MemberList.digest`); a mismatch that persists triggers a sync.
    public var digest: UInt64
    public var probeID: UInt32
    /// The member a ping or ping request is meant for.
    public var target: NodeID
    public var targetAddress: SocketAddress?
    public var items: [GossipItem]
    /// A sync request's digest of each id range (`bucketCount` or `fineBucketCount` of them), or none from a
    /// joining node.
    public var bucketDigests: [UInt64]
    /// How many present members (self included) the requester holds in each of those ranges.
    public var bucketCounts: [UInt16]
    /// A sync request's fingerprint of each present member it holds (the low 16 bits of the member's digest
    /// term), range by range in range order, `bucketCounts[b]` for range b; or none. The responder then sends,
    /// of a differing range, only what the requester lacks instead of the whole range.
    public var memberFingerprints: [UInt16]

    public init(
        type: MessageType, digest: UInt64, probeID: UInt32 = 0, target: NodeID = NodeID(rawValue: 0),
        targetAddress: SocketAddress? = nil, items: [GossipItem] = [], bucketDigests: [UInt64] = [],
        bucketCounts: [UInt16] = [], memberFingerprints: [UInt16] = []
    ) {
        precondition(bucketCounts.count == bucketDigests.count)
        self.type = type
        self.digest = digest
        self.probeID = probeID
        self.target = target
        self.targetAddress = targetAddress
        self.items = items
        self.bucketDigests = bucketDigests
        self.bucketCounts = bucketCounts
        self.memberFingerprints = memberFingerprints
    }

    /// Id ranges of a sync request's bucket digests: the top 8 bits of a member's id pick its bucket.
    public static let bucketCount = 256
    /// Id ranges of a pull from a node with a large view (the top 10 bits): replies for nearly complete views
    /// then repeat fewer members the requester already holds.
    public static let fineBucketCount = 1024
    /// Id ranges of a pull from a node with a view of thousands (the top 12 bits): about as many ranges as
    /// members, so a reply holds little besides what the requester lacks.
    public static let finestBucketCount = 4096

    public static func finestBucket(of id: NodeID) -> Int { Int(id.rawValue >> 52) }

    /// Items one datagram may carry; a sync carries at most `membersMax` (checked by the caller's limit).
    public static let datagramItemsMax = 64

    /// Bytes besides the items: type, digest, type-specific fields, item count, and a sync request's bucket
    /// digests (which follow the items).
    public var headerByteCount: Int {
        var n = 1 + 8 + 2
        switch type {
        case .ping: n += 4 + 8
        case .ack: n += 4
        case .pingRequest: n += 4 + 8 + 1 + (targetAddress?.family == .ipv6 ? 16 : 4) + 2
        case .syncRequest: n += 2 + 10 * bucketDigests.count + 4 + 2 * memberFingerprints.count
        case .gossip, .syncResponse: break
        }
        return n
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: headerByteCount + items.reduce(0) { $0 + $1.encodedByteCount })
        w.write(type.rawValue)
        w.write(digest)
        switch type {
        case .ping:
            w.write(probeID)
            w.write(target.rawValue)
        case .ack:
            w.write(probeID)
        case .pingRequest:
            w.write(probeID)
            w.write(target.rawValue)
            Message.encode(targetAddress ?? SocketAddress(ipv4: 0, 0, 0, 0, port: 0), into: &w)
        case .gossip, .syncRequest, .syncResponse:
            break
        }
        w.write(UInt16(items.count))
        for item in items {
            switch item {
            case .member(let u):
                w.write(UInt8(u.proof == nil ? 1 : 5))
                w.write(u.state.rawValue)
                w.write(u.id.rawValue)
                w.write(u.incarnation)
                w.write(u.reporter.rawValue)
                Message.encode(u.address, into: &w)
                if let p = u.proof {
                    w.write(p.key)
                    w.write(p.signature)
                }
            case .event(let e):
                w.write(UInt8(2))
                w.write(e.origin.rawValue)
                w.write(e.id)
                w.writeLengthPrefixed(e.payload)
            case .release(let a):
                w.write(UInt8(3))
                a.encode(into: &w)
            case .status(let st):
                w.write(UInt8(st.signature.isEmpty ? 4 : 6))
                st.encode(into: &w)
                w.write(st.signature)
            }
        }
        if type == .syncRequest {
            w.write(UInt16(bucketDigests.count))
            for d in bucketDigests { w.write(d) }
            for c in bucketCounts { w.write(c) }
            w.write(UInt32(memberFingerprints.count))
            for f in memberFingerprints { w.write(f) }
        }
        return w.bytes
    }

    static func encode(_ a: SocketAddress, into w: inout ByteWriter) {
        w.write(a.family.rawValue)
        if a.family == .ipv4 {
            w.write(UInt32(truncatingIfNeeded: a.high >> 32))
        } else {
            w.write(a.high)
            w.write(a.low)
        }
        w.write(a.port)
    }

    static func decodeAddress(_ r: inout ByteReader) throws(WireError) -> SocketAddress {
        let family = try r.readUInt8("address family")
        let length: Int
        switch family {
        case SocketAddress.Family.ipv4.rawValue: length = 4
        case SocketAddress.Family.ipv6.rawValue: length = 16
        default: throw .invalidValue(field: "address family", value: UInt64(family))
        }
        let high: UInt64
        var low: UInt64 = 0
        if length == 4 {
            high = UInt64(try r.readUInt32("address")) << 32
        } else {
            high = try r.readUInt64("address")
            low = try r.readUInt64("address")
        }
        let port = try r.readUInt16("port")
        return SocketAddress(family: length == 4 ? .ipv4 : .ipv6, high: high, low: low, port: port)
    }

    /// Decodes a message, refusing more than `itemsMax` items and anything left over.
    public static func decode(_ bytes: [UInt8], itemsMax: Int) throws(WireError) -> Message {
        var r = ByteReader(bytes)
        let t = try r.readUInt8("message type")
        guard let type = MessageType(rawValue: t) else { throw .unknownMessageType(t) }
        var m = Message(type: type, digest: try r.readUInt64("digest"))
        switch type {
        case .ping:
            m.probeID = try r.readUInt32("probe id")
            m.target = NodeID(rawValue: try r.readUInt64("target"))
        case .ack:
            m.probeID = try r.readUInt32("probe id")
        case .pingRequest:
            m.probeID = try r.readUInt32("probe id")
            m.target = NodeID(rawValue: try r.readUInt64("target"))
            m.targetAddress = try decodeAddress(&r)
        case .gossip, .syncRequest, .syncResponse:
            break
        }
        let count = Int(try r.readUInt16("item count"))
        if count > itemsMax { throw .lengthOverLimit(field: "item count", length: count, limit: itemsMax) }
        m.items.reserveCapacity(count)
        for _ in 0..<count {
            let tag = try r.readUInt8("item tag")
            switch tag {
            case 1, 5:
                let s = try r.readUInt8("member state")
                guard let state = MemberState(rawValue: s) else {
                    throw .invalidValue(field: "member state", value: UInt64(s))
                }
                let id = NodeID(rawValue: try r.readUInt64("member id"))
                let incarnation = try r.readUInt64("incarnation")
                let reporter = NodeID(rawValue: try r.readUInt64("reporter"))
                let address = try decodeAddress(&r)
                var proof: MemberProof?
                if tag == 5 {
                    proof = MemberProof(
                        key: try r.readBytes(32, "member key"), signature: try r.readBytes(64, "member signature"))
                }
                m.items.append(
                    .member(
                        MemberUpdate(
                            state: state, id: id, incarnation: incarnation, address: address, reporter: reporter,
                            proof: proof)))
            case 2:
                let origin = NodeID(rawValue: try r.readUInt64("event origin"))
                let id = try r.readUInt64("event id")
                let payload = try r.readLengthPrefixed("event payload", limit: GossipEvent.payloadByteCountMax)
                m.items.append(.event(GossipEvent(origin: origin, id: id, payload: payload)))
            case 3:
                m.items.append(.release(try ReleaseAdvert.decode(&r)))
            case 4, 6:
                var st = try NodeStatus.decode(&r)
                if tag == 6 { st.signature = try r.readBytes(64, "status signature") }
                m.items.append(.status(st))
            default:
                throw .invalidValue(field: "item tag", value: UInt64(tag))
            }
        }
        if type == .syncRequest {
            let buckets = Int(try r.readUInt16("bucket count"))
            if buckets != 0 && buckets != bucketCount && buckets != fineBucketCount && buckets != finestBucketCount {
                throw .invalidValue(field: "bucket count", value: UInt64(buckets))
            }
            m.bucketDigests.reserveCapacity(buckets)
            for _ in 0..<buckets { m.bucketDigests.append(try r.readUInt64("bucket digest")) }
            m.bucketCounts.reserveCapacity(buckets)
            for _ in 0..<buckets { m.bucketCounts.append(try r.readUInt16("bucket member count")) }
            let fingerprints = Int(try r.readUInt32("fingerprint count"))
            if fingerprints > itemsMax {
                throw .lengthOverLimit(field: "fingerprint count", length: fingerprints, limit: itemsMax)
            }
            if fingerprints != 0 {
                var members = 0
                for c in m.bucketCounts { members += Int(c) }
                if fingerprints != members {
                    throw .invalidValue(field: "fingerprint count", value: UInt64(fingerprints))
                }
                if fingerprints * 2 > r.remaining {
                    throw .truncated(field: "member fingerprints", needed: fingerprints * 2, available: r.remaining)
                }
                m.memberFingerprints.reserveCapacity(fingerprints)
                for _ in 0..<fingerprints { m.memberFingerprints.append(try r.readUInt16("member fingerprint")) }
            }
        }
        if !r.isAtEnd { throw .trailingBytes(count: r.remaining) }
        return m
    }
}
