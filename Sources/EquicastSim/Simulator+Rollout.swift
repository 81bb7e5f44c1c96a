import EquicastCore
import EquicastCrypto

/// The rollout scenario: once the fleet has joined, an operator hands a signed release to node 0 (as
/// `equicast rollout push` does, in sealed push frames) and the real release code in every `Node` carries it
/// through the simulated links. Chunk bytes are real (random, so zlib cannot shrink them) and every node
/// verifies each chunk it receives and serves; the simulator's stores keep one bit per chunk per node and
/// one shared copy of the bytes, so memory does not grow with N times the image.
struct SimRollout {
    let signed: SignedManifest
    let chunks: [[UInt8]]
    let settings: ReleaseSettings
    /// Compressed bytes of all chunks: what each node must download.
    let payloadBytes: UInt64
    var startedAt: UInt64?
    /// Simulated ms after the hand-over at which each node verified the last chunk, in order.
    var verifiedAfter: [UInt64] = []

    var id: Digest256 { signed.releaseID }
    var version: UInt64 { signed.manifest.version }

    /// A deterministic image of `byteCount` random bytes, cut and signed like any release.
    init(seed: UInt64, byteCount: Int) {
        var rng = DeterministicRandom(seed: seed ^ 0x7e1e_a5e0)
        var image = [UInt8]()
        image.reserveCapacity(byteCount + 8)
        while image.count < byteCount { withUnsafeBytes(of: rng.next()) { image += $0 } }
        image.removeLast(image.count - byteCount)
        let key = try! Ed25519.SigningKey(seed: rng.bytes(32))  // 32 bytes: cannot fail
        let built = try! ReleaseBuilder.build(  // a non-empty image under chunksMax chunks: cannot fail
            image: image, product: "sim", version: 2, createdAt: 0, policy: RolloutPolicy(), key: key)
        signed = built.manifest
        chunks = built.chunks
        payloadBytes = built.chunks.reduce(0) { $0 + UInt64($1.count) }
        var s = ReleaseSettings()
        s.trustedKeys = [key.publicKey]
        s.product = "sim"
        s.installedVersion = 1
        settings = s
    }
}

extension Simulator {
    /// Hands the release to node 0: the push, then every chunk, as sealed frames from an operator's id.
    func startRollout() {
        guard var r = rollout, slots[0].up, let origin = slots[0].node else { return }
        r.startedAt = now
        rollout = r
        let sealer = FrameSealer(
            sender: NodeID(rawValue: rng.next()), keyring: keyring, encryptionEnabled: options.encryptionEnabled)
        var messages = [TransferMessage(type: .push, payload: r.signed.bytes)]
        for (i, chunk) in r.chunks.enumerated() {
            messages.append(TransferMessage(type: .pushChunk, releaseID: r.id, index: UInt16(i), payload: chunk))
        }
        for (k, m) in messages.enumerated() {
            let frame = sealer.seal(m.encode(), messageClass: .data, sequence: UInt64(k + 1), nonce: rng.bytes(24))
            // A connection the simulator does not track: the origin's replies go nowhere.
            origin.handleStreamFrame(frame, stream: .accepted(network.untrackedConnection()), now: nodeClock(0))
            flush(0)
        }
    }

    /// What the rollout cost and took; nil for other scenarios.
    public var rolloutResult: SimRolloutResult? {
        guard let r = rollout else { return nil }
        var served: [UInt64] = []
        var behind: [String: Int] = [:]
        for s in slots {
            served.append(s.node?.counters.bytesServed ?? 0)
            guard s.up, s.verifiedAt == nil, let node = s.node else { continue }
            let held = node.heldRelease?.releaseID == r.id
            let chunks = held ? " \(node.releaseHaves?.setCount ?? 0)/\(r.chunks.count) chunks" : ""
            behind[node.updateState.name + (held ? ", holding it," + chunks : ", not holding it"), default: 0] += 1
        }
        return SimRolloutResult(
            imageBytes: r.signed.manifest.imageSize, chunkCount: r.chunks.count, payloadBytes: r.payloadBytes,
            startedAt: r.startedAt.map { $0 / 1000 }, verifiedAfter: r.verifiedAfter, servedBytes: served,
            behind: behind.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" })
    }
}

/// The figures a rollout run is judged by.
public struct SimRolloutResult: Sendable {
    public let imageBytes: UInt64
    public let chunkCount: Int
    public let payloadBytes: UInt64
    /// When node 0 was handed the release (simulated ms), nil if it never was.
    public let startedAt: UInt64?
    /// Per node that verified it, in order: ms after the hand-over.
    public let verifiedAfter: [UInt64]
    /// Bytes of chunks each node served (index = node).
    public let servedBytes: [UInt64]
    /// Live nodes that had not verified the release at the end, by update state: "3 downloading, holding it,
    /// 12/17 chunks".
    public let behind: [String]

    /// Ms after the hand-over when `fraction` of `nodes` had verified the release; nil if they never did.
    public func time(toFraction fraction: Double, of nodes: Int) -> UInt64? {
        let needed = max(1, Int((Double(nodes) * fraction).rounded(.up)))
        return needed <= verifiedAfter.count ? verifiedAfter[needed - 1] : nil
    }

    /// Copies of the release the origin uploaded, and the most any other node did.
    public var originCopies: Double { Double(servedBytes.first ?? 0) / Double(max(1, payloadBytes)) }
    public var busiestPeerCopies: Double {
        Double(servedBytes.dropFirst().max() ?? 0) / Double(max(1, payloadBytes))
    }

    /// The least time any scheme could take (ms): the origin must upload one copy, every node must download
    /// one, and the fleet's total upload must carry N - 1 copies (F/u_s, F/d, (N-1)F/(u_s + (N-1)u)).
    public static func lowerBound(payloadBytes: UInt64, nodes: Int, upload: UInt64, download: UInt64) -> UInt64 {
        let bits = Double(payloadBytes) * 8
        let downloaders = Double(max(1, nodes - 1))
        let bound = max(
            bits / Double(upload), bits / Double(download), downloaders * bits / (Double(upload) * (1 + downloaders)))
        return UInt64((bound * 1000).rounded(.up))
    }
}
