import EquicastCrypto

/// Where a node stands with a release. APPEND ONLY (sent on the wire, and the MIB's update-state values).
public enum UpdateState: UInt8, Sendable, CaseIterable {
    /// Nothing to do: running the newest release this node is eligible for.
    case idle = 0
    /// A newer release was announced; its manifest is being fetched and checked.
    case announced = 1
    /// Fetching chunks.
    case downloading = 2
    /// Every chunk is here; the image is being assembled and its hash checked.
    case verifying = 3
    /// The image is assembled and verified, waiting to be installed.
    case staged = 4
    /// The install command is running.
    case installing = 5
    /// The health command is running.
    case healthCheck = 6
    /// The release is installed and healthy.
    case committed = 7
    /// The update failed before anything was installed (bad image, full disk, install command failed).
    case failed = 8
    /// The health check failed and the rollback command ran.
    case rolledBack = 9

    public var name: String {
        switch self {
        case .idle: return "idle"
        case .announced: return "announced"
        case .downloading: return "downloading"
        case .verifying: return "verifying"
        case .staged: return "staged"
        case .installing: return "installing"
        case .healthCheck: return "health-check"
        case .committed: return "committed"
        case .failed: return "failed"
        case .rolledBack: return "rolled-back"
        }
    }

    /// The update reached an end on this node: it will not change without a new release.
    public var isFinal: Bool { self == .committed || self == .failed || self == .rolledBack }
}

/// A node's firmware and update progress as the fleet hears it: gossiped when it changes (state changes and
/// every tenth of the download), so that any node can report fleet-wide progress.
public struct NodeStatus: Equatable, Sendable {
    public var node: NodeID
    /// `ReleaseAdvert.productTag` of the node's product: releases for another product are not for it.
    public var productTag: UInt64
    /// Higher replaces lower (boot count in the high half, like incarnations, so a restart outranks).
    public var sequence: UInt64
    public var installedVersion: UInt64
    /// The version being fetched or installed; 0 when none.
    public var targetVersion: UInt64
    public var state: UpdateState
    public var chunksHave: UInt16
    public var chunksTotal: UInt16
    /// The node's signature of the status (`Statement.status`); empty for a status not yet signed. Nodes apply
    /// and pass on only statuses signed by the node they describe.
    public var signature: [UInt8] = []

    public init(
        node: NodeID, productTag: UInt64, sequence: UInt64, installedVersion: UInt64, targetVersion: UInt64,
        state: UpdateState,
        chunksHave: UInt16, chunksTotal: UInt16
    ) {
        self.node = node
        self.productTag = productTag
        self.sequence = sequence
        self.installedVersion = installedVersion
        self.targetVersion = targetVersion
        self.state = state
        self.chunksHave = chunksHave
        self.chunksTotal = chunksTotal
    }

    static let encodedByteCount = 8 + 8 + 8 + 8 + 8 + 1 + 2 + 2

    func encode(into w: inout ByteWriter) {
        w.write(node.rawValue)
        w.write(productTag)
        w.write(sequence)
        w.write(installedVersion)
        w.write(targetVersion)
        w.write(state.rawValue)
        w.write(chunksHave)
        w.write(chunksTotal)
    }

    static func decode(_ r: inout ByteReader) throws(WireError) -> NodeStatus {
        let node = NodeID(rawValue: try r.readUInt64("status node"))
        let tag = try r.readUInt64("product tag")
        let sequence = try r.readUInt64("status sequence")
        let installed = try r.readUInt64("installed version")
        let target = try r.readUInt64("target version")
        let s = try r.readUInt8("update state")
        guard let state = UpdateState(rawValue: s) else { throw .invalidValue(field: "update state", value: UInt64(s)) }
        let have = try r.readUInt16("chunks have")
        let total = try r.readUInt16("chunks total")
        guard have <= total else { throw .invalidValue(field: "chunks have", value: UInt64(have)) }
        return NodeStatus(
            node: node, productTag: tag, sequence: sequence, installedVersion: installed, targetVersion: target,
            state: state,
            chunksHave: have, chunksTotal: total)
    }
}

/// A release as gossip announces it: enough for a node to decide whether it wants the release (product and
/// version) before fetching the manifest, and to check that the manifest it fetches is the one announced.
public struct ReleaseAdvert: Equatable, Sendable {
    /// BLAKE2b-256 of the signed manifest bytes.
    public var releaseID: Digest256
    public var version: UInt64
    /// The first 8 bytes of BLAKE2b-256 of the product string, big-endian.
    public var productTag: UInt64
    public var chunkCount: UInt16
    public var manifestByteCount: UInt32

    public init(
        releaseID: Digest256, version: UInt64, productTag: UInt64, chunkCount: UInt16, manifestByteCount: UInt32
    ) {
        self.releaseID = releaseID
        self.version = version
        self.productTag = productTag
        self.chunkCount = chunkCount
        self.manifestByteCount = manifestByteCount
    }

    public init(_ signed: SignedManifest) {
        self.init(
            releaseID: signed.releaseID, version: signed.manifest.version,
            productTag: ReleaseAdvert.productTag(signed.manifest.product),
            chunkCount: UInt16(signed.manifest.chunks.count), manifestByteCount: UInt32(signed.bytes.count))
    }

    public static func productTag(_ product: String) -> UInt64 {
        let d = Digest256(hashing: Array(product.utf8))
        var t: UInt64 = 0
        for b in d.bytes.prefix(8) { t = t << 8 | UInt64(b) }
        return t
    }

    static let encodedByteCount = 32 + 8 + 8 + 2 + 4

    func encode(into w: inout ByteWriter) {
        w.write(releaseID.bytes)
        w.write(version)
        w.write(productTag)
        w.write(chunkCount)
        w.write(manifestByteCount)
    }

    static func decode(_ r: inout ByteReader) throws(WireError) -> ReleaseAdvert {
        let id = Digest256(bytes: try r.readBytes(32, "release id"))!
        let version = try r.readUInt64("release version")
        let tag = try r.readUInt64("product tag")
        let chunks = try r.readUInt16("chunk count")
        let size = try r.readUInt32("manifest size")
        guard chunks > 0 && Int(chunks) <= ReleaseManifest.chunksMax else {
            throw .invalidValue(field: "chunk count", value: UInt64(chunks))
        }
        guard Int(size) <= FrameLimits.streamPayloadBudget - TransferMessage.replyHeaderByteCount else {
            throw .lengthOverLimit(
                field: "manifest size", length: Int(size),
                limit: FrameLimits.streamPayloadBudget - TransferMessage.replyHeaderByteCount)
        }
        return ReleaseAdvert(
            releaseID: id, version: version, productTag: tag, chunkCount: chunks, manifestByteCount: size)
    }
}
