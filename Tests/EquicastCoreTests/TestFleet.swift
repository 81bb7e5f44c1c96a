import EquicastCore
import EquicastCrypto

/// A minimal in-memory network driving real `Node`s on a virtual clock, for unit tests (the full simulator with
/// loss models, partitions and bandwidth is EquicastSim). Datagrams arrive after `latency` ms; a stream request
/// is answered in the same step. Crashed nodes neither send nor receive; `blocked` pairs drop traffic.
final class TestFleet {
    static let keyring = try! FleetKeyring(
        primary: FleetKey(master: try! SymmetricKey(bytes: [UInt8](repeating: 7, count: 32))))

    var nodes: [Node] = []
    var crashed: Set<Int> = []
    var blocked: Set<[Int]> = []  // [from, to]
    var now: UInt64 = 0
    let latency: UInt64 = 2
    var config: MembershipConfig
    var inFlight: [(at: UInt64, to: Int, from: SocketAddress, bytes: [UInt8])] = []
    var eventLog: [(node: Int, event: NodeEvent)] = []
    var seed: UInt64
    var release: ReleaseSettings
    /// Each node's chunk store, content-addressed by chunk id (like the agent's), and what it was asked to do.
    var stores: [[Digest256: [UInt8]]] = []
    var stored: [Int] = []
    /// Nodes whose store hands out damaged chunks (to test that they are checked before serving).
    var corruptStores: Set<Int> = []
    /// Compromised nodes (they hold the fleet key): they answer every chunk request with garbage.
    var rogues: Set<Int> = []
    var rogueSequence: UInt64 = 1 << 60

    /// `.ed25519` (real key pairs) by default; `.simulated` lets a test make up members with ids of its
    /// choosing (`NodeIdentity(simulated:)`) and sign their records.
    let scheme: SignatureScheme

    init(
        count: Int, config: MembershipConfig = MembershipConfig(), seed: UInt64 = 1,
        release: ReleaseSettings = ReleaseSettings(), scheme: SignatureScheme = .ed25519
    ) {
        self.scheme = scheme
        self.config = config
        self.seed = seed
        self.release = release
        stores = Array(repeating: [:], count: count)
        stored = Array(repeating: 0, count: count)
        for i in 0..<count { nodes.append(makeNode(i, bootCount: 1)) }
    }

    func address(_ i: Int) -> SocketAddress {
        SocketAddress(ipv4: 10, 0, UInt8(i / 250), UInt8(i % 250 + 1), port: 7946)
    }

    func index(of a: SocketAddress) -> Int? {
        let b = a.bytes
        guard b[0] == 10 else { return nil }
        let i = Int(b[2]) * 250 + Int(b[3]) - 1
        return i < nodes.count ? i : nil
    }

    /// Node i's identity: an Ed25519 key pair drawn from the fleet's seed, so a node keeps it across restarts.
    func identity(_ i: Int) -> NodeIdentity {
        var keySource = DeterministicRandom(seed: seed &+ UInt64(i) &* 7919)
        if scheme == .simulated { return NodeIdentity(simulated: NodeID(rawValue: keySource.next())) }
        return NodeIdentity(signingKey: try! Ed25519.SigningKey(seed: keySource.bytes(32)))
    }

    func makeNode(_ i: Int, bootCount: UInt64, seeds: [Int] = [0]) -> Node {
        var rng = DeterministicRandom(seed: seed &* 1000 &+ UInt64(i) &+ bootCount << 20)
        return Node(
            identity: identity(i), address: address(i), bootCount: bootCount, keyring: TestFleet.keyring,
            encryptionEnabled: true,
            config: config, seeds: i == 0 ? [] : seeds.map(address), randomSeed: rng.bytes(32), now: now,
            release: release)
    }

    /// Restarts node i with its id and a higher boot count (its persisted state survived).
    func restart(_ i: Int) {
        crashed.remove(i)
        let old = nodes[i]
        var rng = DeterministicRandom(seed: seed &+ UInt64(i) &+ 99)
        nodes[i] = Node(
            identity: identity(i), address: old.address, bootCount: (old.incarnation >> 32) + 1,
            keyring: TestFleet.keyring,
            encryptionEnabled: true, config: config, seeds: [address(0)], randomSeed: rng.bytes(32), now: now,
            release: release)
    }

    /// Stream requests wait this long (ms) before they are answered (0: at once, in the sender's drain).
    var streamLatency: UInt64 = 0
    var pendingStreams: [(at: UInt64, from: Int, sid: UInt64, to: SocketAddress, bytes: [UInt8])] = []

    func openStream(from i: Int, sid: UInt64, to: SocketAddress, bytes: [UInt8]) {
        let node = nodes[i]
        guard !crashed.contains(i) else { return }
        guard let j = index(of: to), !crashed.contains(j), !blocked.contains([i, j]), !blocked.contains([j, i]) else {
            node.handleStreamFailed(id: sid, now: now)
            return
        }
        if rogues.contains(j), let reply = rogueReply(from: j, to: bytes) {
            node.handleStreamFrame(reply, stream: .outgoing(sid), now: now)
            return
        }
        let connection = nextConnection
        nextConnection += 1
        connections[connection] = (i, sid)
        nodes[j].handleStreamFrame(bytes, stream: .accepted(connection), now: now)
        // Inside node i's drain: j's replies go back to i at once, its other transmits wait for its own drain.
        var driver = FleetDriver(fleet: self, node: j, nested: true)
        nodes[j].drain(into: &driver)
    }

    /// Accepted connections: the requester and its stream id, until the reply's last frame.
    var connections: [UInt64: (node: Int, sid: UInt64)] = [:]
    var nextConnection: UInt64 = 1

    /// Hands a reply frame to the node whose request it answers; false when `t` is not a reply.
    func deliverReply(_ t: Transmit) -> Bool {
        let c: UInt64
        let frame: [UInt8]
        let last: Bool
        switch t {
        case .streamReply(let k, let r): (c, frame, last) = (k, r, true)
        case .streamPart(let k, let r): (c, frame, last) = (k, r, false)
        default: return false
        }
        guard let (i, sid) = connections[c] else { return true }
        if last { connections[c] = nil }
        if last && holdLastFrames && nodes[i].awaitsMoreFrames(stream: sid) {
            held.append((i, sid, frame))
            return true
        }
        if !crashed.contains(i) { nodes[i].handleStreamFrame(frame, stream: .outgoing(sid), now: now) }
        return true
    }

    /// When set, the last frame of every chunk reply is kept back (in `held`): chunks stay one piece short.
    var holdLastFrames = false
    var held: [(node: Int, sid: UInt64, frame: [UInt8])] = []

    /// Hands the frames kept back to their requesters (`deliver`), or fails their requests instead.
    func releaseHeld(deliver: Bool) {
        let frames = held
        held = []
        for h in frames where !crashed.contains(h.node) {
            if deliver {
                nodes[h.node].handleStreamFrame(h.frame, stream: .outgoing(h.sid), now: now)
            } else {
                nodes[h.node].handleStreamFailed(id: h.sid, now: now)
            }
        }
    }

    /// How a rogue answers: a piece of wrong bytes, a chunk reply that carries bytes (no honest peer sends
    /// one), or, to a manifest request, the bytes of another manifest (`rogueManifest`).
    enum RogueAnswer { case wrongPiece, bytesInChunkReply, wrongManifest }
    var rogueAnswer = RogueAnswer.wrongPiece
    var rogueManifest: [UInt8] = []
    /// Requests the rogues answered.
    var rogueAnswers = 0

    /// A compromised node's answer to a chunk (or manifest) request: well sealed, wrong bytes. nil: the rogue
    /// answers this request honestly.
    func rogueReply(from j: Int, to request: [UInt8]) -> [UInt8]? {
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        guard let frame = try? opener.open(request, transport: .stream), frame.header.messageClass == .data,
            let m = try? TransferMessage.decode(frame.payload)
        else { return nil }
        let reply: TransferMessage
        switch (rogueAnswer, m.type) {
        case (.wrongPiece, .chunkRequest):
            reply = TransferMessage(
                type: .chunkPiece, releaseID: m.releaseID, index: m.index, piece: m.piece,
                payload: [UInt8](repeating: 0x5a, count: 4096))
        case (.bytesInChunkReply, .chunkRequest):
            reply = TransferMessage(
                type: .chunkReply, releaseID: m.releaseID, index: m.index, payload: [UInt8](repeating: 0x5a, count: 64))
        case (.wrongManifest, .manifestRequest):
            reply = TransferMessage(type: .manifestReply, releaseID: m.releaseID, payload: rogueManifest)
        default: return nil
        }
        rogueAnswers += 1
        rogueSequence += 1
        let sealer = FrameSealer(sender: nodes[j].id, keyring: TestFleet.keyring, encryptionEnabled: true)
        return sealer.seal(
            reply.encode(), messageClass: .data, sequence: rogueSequence, nonce: [UInt8](repeating: 1, count: 24))
    }

    /// Carries out one of node i's storage requests against its in-memory store.
    func carryOut(_ i: Int, _ r: StorageRequest) {
        let node = nodes[i]
        switch r {
        case .openRelease(let signed):
            let chunks = signed.manifest.chunks
            var present = ChunkBitfield(count: chunks.count)
            for (k, c) in chunks.enumerated() where stores[i][c.id] != nil { present.insert(k) }
            node.releaseOpened(signed.releaseID, present: present, now: now)
        case .storeChunk(_, _, let chunk, let bytes):
            stores[i][chunk] = bytes
            stored[i] += 1
        case .readChunk(let connection, let requester, let release, let index, let chunk, let from):
            var bytes = stores[i][chunk.id]
            if corruptStores.contains(i), bytes != nil { bytes![0] ^= 0xff }
            node.serveChunk(
                connection: connection, requester: requester, release: release, index: index, from: from,
                bytes: bytes, now: now)
        case .discardChunk(_, _, let chunk):
            stores[i][chunk] = nil
        }
    }

    /// Carries out node i's storage requests only, for tests that read its transmits themselves.
    func serviceStorage(_ i: Int) {
        while let r = nodes[i].pollStorage() { carryOut(i, r) }
    }

    /// Transmits a node made while answering a stream inside another node's drain, sent at its own next drain.
    var deferred: [Int: [Transmit]] = [:]

    /// Sends one of node i's transmits into the virtual network.
    func send(_ i: Int, _ t: Transmit) {
        if crashed.contains(i) { return }
        switch t {
        case .datagram(let to, let bytes):
            guard let j = index(of: to) else { return }
            if blocked.contains([i, j]) { return }
            inFlight.append((now + latency, j, nodes[i].address, bytes))
        case .streamOpen(let sid, let to, let bytes):
            if streamLatency > 0 {
                pendingStreams.append((now + streamLatency, i, sid, to, bytes))
            } else {
                openStream(from: i, sid: sid, to: to, bytes: bytes)
            }
        case .streamReply, .streamPart:
            _ = deliverReply(t)
        }
    }

    func drain(_ i: Int) {
        for t in deferred.removeValue(forKey: i) ?? [] { send(i, t) }
        var driver = FleetDriver(fleet: self, node: i, nested: false)
        nodes[i].drain(into: &driver)
    }

    /// Advances virtual time to `until`, delivering datagrams and firing timers in order.
    func run(until: UInt64) {
        while true {
            for i in nodes.indices { drain(i) }
            var next = until
            for f in inFlight { next = min(next, f.at) }
            for p in pendingStreams { next = min(next, p.at) }
            for (i, n) in nodes.enumerated() where !crashed.contains(i) { next = min(next, n.pollTimeout()) }
            if next > until { break }
            now = max(now, next)
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            let dueStreams = pendingStreams.filter { $0.at <= now }
            pendingStreams.removeAll { $0.at <= now }
            for p in dueStreams {
                openStream(from: p.from, sid: p.sid, to: p.to, bytes: p.bytes)
                drain(p.from)
            }
            for d in due where !crashed.contains(d.to) {
                if let from = index(of: d.from), blocked.contains([from, d.to]) { continue }
                nodes[d.to].handleDatagram(d.bytes, from: d.from, now: now)
            }
            for (i, n) in nodes.enumerated() where !crashed.contains(i) && n.pollTimeout() <= now {
                n.handleTimeout(now: now)
            }
            if now >= until { break }
        }
        for i in nodes.indices { drain(i) }
        now = until
    }

    /// Runs until `condition` holds, checking every 10 ms; returns the time it first held, or nil by `deadline`.
    func runUntil(deadline: UInt64, _ condition: () -> Bool) -> UInt64? {
        while now < deadline {
            if condition() { return now }
            run(until: now + 10)
        }
        return condition() ? now : nil
    }

    func state(of j: Int, seenBy i: Int) -> MemberState? { nodes[i].member(nodes[j].id)?.state }

    /// Every live node sees every live node alive and every crashed node as `crashedState`.
    func converged(crashedState: MemberState = .failed) -> Bool {
        for i in nodes.indices where !crashed.contains(i) {
            for j in nodes.indices where j != i {
                let expected: MemberState = crashed.contains(j) ? crashedState : .alive
                if state(of: j, seenBy: i) != expected { return false }
            }
        }
        return true
    }
}

/// The test fleet as the driver of node `node`. `nested`: the node answers a stream inside another node's drain,
/// so only its replies go out now.
struct FleetDriver: NodeDriver {
    let fleet: TestFleet
    let node: Int
    let nested: Bool

    func carryOut(_ request: StorageRequest, for n: Node) { fleet.carryOut(node, request) }
    func send(_ transmit: Transmit, from n: Node) {
        if nested {
            if !fleet.deliverReply(transmit) { fleet.deferred[node, default: []].append(transmit) }
        } else {
            fleet.send(node, transmit)
        }
    }
    func handle(_ event: NodeEvent, of n: Node) { fleet.eventLog.append((node, event)) }
}
