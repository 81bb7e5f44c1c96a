// Shared by the core fuzz targets (bench/fuzz.sh compiles it into each): the fleet key, a fresh node, and valid
// messages and releases to start the corpus from (written to $FUZZ_SEED_DIR by each target's initializer).
import EquicastCompression
import EquicastCore
import EquicastCrypto

#if canImport(Glibc)
    import Glibc
#endif

enum FuzzSeeds {
    static let keyring = try! FleetKeyring(
        primary: FleetKey(master: try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })))
    static let peer = NodeIdentity(simulated: NodeID(rawValue: 2))
    static let sealer = FrameSealer(sender: peer.id, keyring: keyring, encryptionEnabled: true)
    static let peerAddress = SocketAddress(ipv4: 10, 0, 0, 2, port: 7946)
    static let releaseKey = try! Ed25519.SigningKey(seed: [UInt8](repeating: 9, count: 32))

    /// A node that has just started and knows nobody; it trusts `releaseKey`.
    static func node() -> Node {
        var release = ReleaseSettings()
        release.trustedKeys = [releaseKey.publicKey]
        release.product = "fuzz"
        return Node(
            identity: NodeIdentity(simulated: NodeID(rawValue: 1)),
            address: SocketAddress(ipv4: 10, 0, 0, 1, port: 7946),
            bootCount: 1, keyring: keyring, encryptionEnabled: true, config: MembershipConfig(), seeds: [],
            randomSeed: [UInt8](repeating: 7, count: 32), now: 1_000, release: release)
    }

    static func release() -> (file: [UInt8], manifest: [UInt8]) {
        let image = (0..<3_000).map { UInt8(truncatingIfNeeded: $0 &* 7 ^ $0 >> 3) }
        let built = try! ReleaseBuilder.build(
            image: image, product: "fuzz", version: 2, createdAt: 0, policy: RolloutPolicy(), key: releaseKey)
        return (ReleaseFile.encode(built.manifest, chunks: built.chunks), built.manifest.bytes)
    }

    static func membershipMessages() -> [[UInt8]] {
        let other = NodeIdentity(simulated: NodeID(rawValue: 3))
        let alive = peer.record(incarnation: 1 << 32, address: peerAddress)
        let claim = MemberUpdate(
            state: .suspect, id: other.id, incarnation: 1 << 32, address: peerAddress, reporter: peer.id)
        let status = peer.signed(
            NodeStatus(
                node: peer.id, productTag: ReleaseAdvert.productTag("fuzz"), sequence: 3, installedVersion: 1,
                targetVersion: 2, state: .downloading, chunksHave: 1, chunksTotal: 2))
        let (_, manifest) = release()
        let advert = ReleaseAdvert(
            releaseID: Digest256(hashing: manifest), version: 2, productTag: ReleaseAdvert.productTag("fuzz"),
            chunkCount: 1, manifestByteCount: UInt32(manifest.count))
        let items: [GossipItem] = [
            .member(alive), .member(other.record(incarnation: 5, address: peerAddress)), .member(claim),
            .event(GossipEvent(origin: peer.id, id: 1, payload: [1, 2, 3])), .status(status), .release(advert),
        ]
        return [
            Message(type: .ping, digest: 1, probeID: 9, target: NodeID(rawValue: 1)),
            Message(type: .ack, digest: 1, probeID: 9),
            Message(type: .pingRequest, digest: 1, probeID: 9, target: other.id, targetAddress: peerAddress),
            Message(type: .gossip, digest: 1, items: items),
            Message(type: .syncRequest, digest: 1, items: [.member(alive)]),
            Message(
                type: .syncRequest, digest: 1, items: [.member(alive)],
                bucketDigests: [UInt64](repeating: 3, count: 256),
                bucketCounts: [UInt16](repeating: 0, count: 255) + [1], memberFingerprints: [7]),
            Message(type: .syncResponse, digest: 1, items: items),
        ].map { $0.encode() }
    }

    static func transferMessages() -> [[UInt8]] {
        let (file, manifest) = release()
        let id = Digest256(hashing: manifest)
        var haves = ChunkBitfield(count: 2)
        haves.insert(0)
        return [
            TransferMessage(type: .haves, releaseID: id, haves: haves, wantsReply: true),
            TransferMessage(type: .manifestRequest, releaseID: id),
            TransferMessage(type: .manifestReply, releaseID: id, payload: manifest),
            TransferMessage(type: .chunkRequest, releaseID: id, index: 0, piece: 0),
            TransferMessage(type: .chunkReply, releaseID: id, index: 0, payload: Array(file.suffix(64))),
            TransferMessage(type: .chunkPiece, releaseID: id, index: 0, piece: 1, payload: Array(file.suffix(64))),
            TransferMessage(type: .push, releaseID: id, payload: manifest),
            TransferMessage(type: .pushChunk, releaseID: id, index: 0, payload: Array(file.suffix(64))),
            TransferMessage(type: .pushReply, releaseID: id, haves: haves, pushResult: .refused, reason: "no"),
            TransferMessage(type: .statusRequest),
            TransferMessage(type: .statusReply),
        ].map { $0.encode() }
    }

    /// Writes each seed to $FUZZ_SEED_DIR (when set) as seed-N.
    static func write(_ seeds: [[UInt8]]) {
        guard let dir = getenv("FUZZ_SEED_DIR").map({ String(cString: $0) }) else { return }
        for (i, seed) in seeds.enumerated() {
            guard let f = fopen("\(dir)/seed-\(i)", "wb") else { continue }
            _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
        }
    }
}
