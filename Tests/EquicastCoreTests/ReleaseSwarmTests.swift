import EquicastCore
import EquicastCrypto
import Testing

/// Releases spreading through an in-memory fleet of real `Node`s: push to one node, pulls from peers, every
/// chunk checked, corrupted chunks refused, interrupted downloads resumed.
@Suite struct ReleaseSwarmTests {
    static let key = try! Ed25519.SigningKey(seed: [UInt8](repeating: 9, count: 32))

    static func settings(installed: UInt64 = 1) -> ReleaseSettings {
        var s = ReleaseSettings()
        s.trustedKeys = [key.publicKey]
        s.product = "acme-gw"
        s.installedVersion = installed
        s.updateState = .committed
        return s
    }

    typealias Built = (manifest: SignedManifest, chunks: [[UInt8]])

    static func release(version: UInt64, size: Int = 1 << 20, seed: UInt64 = 3) throws -> Built {
        try ReleaseBuilder.build(
            image: ContentDefinedChunkerTests.firmwareLike(count: size, seed: seed), product: "acme-gw",
            version: version, createdAt: 1, policy: RolloutPolicy(), key: key)
    }

    /// Two nodes that have converged, and a release (version 2, `size` bytes) pushed to node 0.
    static func pushedToOneOfTwo(seed: UInt64, size: Int) throws -> (TestFleet, Built) {
        let fleet = TestFleet(count: 2, seed: seed, release: ReleaseSwarmTests.settings())
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        let built = try ReleaseSwarmTests.release(version: 2, size: size)
        ReleaseSwarmTests.push(built, to: 0, in: fleet)
        return (fleet, built)
    }

    /// What `equicast rollout push` does, as frames sealed by an operator identity: the manifest, then each chunk.
    /// Returns the decoded replies.
    @discardableResult
    static func push(_ built: Built, to i: Int, in fleet: TestFleet, chunks: Int? = nil) -> [TransferMessage] {
        let sealer = FrameSealer(sender: NodeID(rawValue: 0xC11), keyring: TestFleet.keyring, encryptionEnabled: true)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 16)
        var sequence: UInt64 = 0
        var replies: [TransferMessage] = []
        var messages = [TransferMessage(type: .push, payload: built.manifest.bytes)]
        for (k, c) in built.chunks.enumerated().prefix(chunks ?? built.chunks.count) {
            messages.append(
                TransferMessage(type: .pushChunk, releaseID: built.manifest.releaseID, index: UInt16(k), payload: c))
        }
        for (n, m) in messages.enumerated() {
            sequence += 1
            let frame = sealer.seal(
                m.encode(), messageClass: .data, sequence: sequence,
                nonce: [UInt8](repeating: UInt8(n & 0xff), count: 24))
            fleet.nodes[i].handleStreamFrame(frame, stream: .accepted(UInt64(900_000 + n)), now: fleet.now)
            fleet.serviceStorage(i)
            while let t = fleet.nodes[i].pollTransmit() {
                if case .streamReply(_, let bytes) = t, let opened = try? opener.open(bytes, transport: .stream) {
                    replies.append(try! TransferMessage.decode(opened.payload))
                } else {
                    fleet.deferred[i, default: []].append(t)
                }
            }
        }
        return replies
    }

    static func complete(_ fleet: TestFleet, except: Set<Int> = []) -> Bool {
        fleet.nodes.indices.allSatisfy { i in
            except.contains(i) || fleet.crashed.contains(i) || (fleet.nodes[i].releaseHaves?.isComplete ?? false)
        }
    }

    @Test func pushedReleaseReachesEveryNodeThroughPeers() throws {
        let fleet = TestFleet(count: 8, release: ReleaseSwarmTests.settings())
        fleet.streamLatency = 5
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        let built = try ReleaseSwarmTests.release(version: 2)
        let replies = ReleaseSwarmTests.push(built, to: 0, in: fleet)
        #expect(replies.count == built.chunks.count + 1)
        #expect(replies.allSatisfy { $0.pushResult == .accepted })
        #expect(replies.last?.haves?.isComplete == true)
        let done = fleet.runUntil(deadline: fleet.now + 30_000) { ReleaseSwarmTests.complete(fleet) }
        #expect(done != nil)
        // Every node stores exactly the chunks that were built, and was told to install.
        for i in fleet.nodes.indices {
            for (k, c) in built.manifest.manifest.chunks.enumerated() {
                #expect(fleet.stores[i][c.id] == built.chunks[k])
            }
            #expect(fleet.nodes[i].updateState == .verifying)
            #expect(
                fleet.eventLog.contains { $0.node == i && $0.event == .releaseDownloaded(built.manifest.releaseID) })
        }
        // A swarm, not a star: the downloaders passed chunks on, and the origin uploaded well under the 7 copies
        // a star would. (This fleet has no bandwidth, so nothing makes a downloader wait for a peer rather than
        // ask the origin, and the whole download takes about 80 ms: over seeds 1-12, with the chunker's earlier
        // 18/12 rule, the origin's share was 4.35-5.04 copies, and the downloader that served least served
        // 0.03-0.18 copies, or none in one seed. The simulator's rollout tests check the shares under bandwidth
        // limits.)
        let size = UInt64(built.chunks.reduce(0) { $0 + $1.count })
        let served = fleet.nodes.map { $0.counters.bytesServed }
        print("bytes served per node, for \(size) bytes of chunks: \(served)")
        #expect(served[0] < 5 * size)
        #expect(served.dropFirst().filter { $0 > 0 }.count >= served.count - 2)
        // Every node learned every node's progress by gossip.
        _ = fleet.runUntil(deadline: fleet.now + 5_000) {
            fleet.nodes.allSatisfy { n in n.fleetStatuses.filter { $0.state == .verifying }.count == 8 }
        }
        for n in fleet.nodes {
            #expect(n.fleetStatuses.count == 8)
            #expect(n.fleetStatuses.allSatisfy { $0.targetVersion == 2 && $0.chunksHave == $0.chunksTotal })
        }
    }

    /// A node that accepts a release tells its ring neighbours and fanout at once, so the announcement crosses a
    /// 32-node fleet in manifest fetches, well within one gossip interval (by gossip rounds alone it takes
    /// several): no node starts its download rounds after the others.
    @Test func theAnnouncementSpreadsFasterThanGossipRounds() throws {
        let fleet = TestFleet(count: 32, seed: 6, release: ReleaseSwarmTests.settings())
        fleet.streamLatency = 5
        #expect(fleet.runUntil(deadline: 20_000) { fleet.converged() } != nil)
        let built = try ReleaseSwarmTests.release(version: 2, size: 200_000)
        let pushedAt = fleet.now
        ReleaseSwarmTests.push(built, to: 0, in: fleet)
        let all = fleet.runUntil(deadline: pushedAt + fleet.config.gossipInterval / 2) {
            fleet.nodes.allSatisfy { $0.heldRelease?.releaseID == built.manifest.releaseID }
        }
        let holding = fleet.nodes.filter { $0.heldRelease?.releaseID == built.manifest.releaseID }.count
        #expect(
            all != nil, "\(holding) of 32 nodes held the release \(fleet.config.gossipInterval / 2) ms after the push")
    }

    @Test func corruptedChunksAreRefusedAndFetchedElsewhere() throws {
        let fleet = TestFleet(count: 8, seed: 6, release: ReleaseSwarmTests.settings())
        fleet.streamLatency = 5
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        // Node 3's disk returns damaged chunks: it must notice before serving and fetch them again.
        fleet.corruptStores = [3]
        let rogue = 5  // a compromised node with the fleet key: it answers every chunk request with garbage
        fleet.rogues = [rogue]
        let built = try ReleaseSwarmTests.release(version: 2, seed: 4)
        ReleaseSwarmTests.push(built, to: 0, in: fleet)
        let done = fleet.runUntil(deadline: fleet.now + 60_000) {
            ReleaseSwarmTests.complete(fleet, except: [3, rogue])
        }
        #expect(done != nil)
        let bad = fleet.nodes.reduce(UInt64(0)) { $0 + $1.counters.badChunks }
        #expect(fleet.rogueAnswers > 0, "nobody asked the rogue: the test shows nothing")
        #expect(bad > 0)
        let violations = fleet.eventLog.filter {
            if case .integrityViolation(let peer, _, _, _) = $0.event { return peer == fleet.nodes[rogue].id }
            return false
        }
        #expect(violations.count == Int(bad))
        for i in fleet.nodes.indices where i != rogue && i != 3 {
            for (k, c) in built.manifest.manifest.chunks.enumerated() {
                #expect(fleet.stores[i][c.id] == built.chunks[k])
            }
        }
    }

    @Test func restartedNodeFetchesOnlyMissingChunks() throws {
        let fleet = TestFleet(count: 6, seed: 7, release: ReleaseSwarmTests.settings())
        fleet.streamLatency = 20
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        let built = try ReleaseSwarmTests.release(version: 2, size: 2 << 20, seed: 6)
        ReleaseSwarmTests.push(built, to: 0, in: fleet)
        let victim = 4
        let total = built.chunks.count
        _ = fleet.runUntil(deadline: fleet.now + 30_000) {
            let n = fleet.nodes[victim].releaseHaves?.setCount ?? 0
            return n >= total / 3
        }
        let before = fleet.stored[victim]
        #expect(before > 0 && before < total)
        // Power cut: the node's memory is gone; its store and its kept manifest survive.
        fleet.crashed.insert(victim)
        fleet.run(until: fleet.now + 2_000)
        fleet.restart(victim)
        #expect(fleet.nodes[victim].restoreRelease(built.manifest.bytes, now: fleet.now) == nil)
        fleet.serviceStorage(victim)
        #expect(fleet.nodes[victim].releaseHaves?.setCount == before)
        let done = fleet.runUntil(deadline: fleet.now + 60_000) { ReleaseSwarmTests.complete(fleet) }
        #expect(done != nil)
        #expect(fleet.stored[victim] == total)  // each chunk stored once, across both lives
    }

    @Test func tamperedOrForeignReleasesAreRefusedByEveryNode() throws {
        let fleet = TestFleet(count: 4, seed: 9, release: ReleaseSwarmTests.settings(installed: 5))
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        // Older than what runs: held by the node it was pushed to (to spread), installed nowhere.
        let old = try ReleaseSwarmTests.release(version: 3)
        let replies = ReleaseSwarmTests.push(old, to: 0, in: fleet)
        #expect(replies.first?.pushResult == .accepted)
        #expect(fleet.nodes[0].heldReleaseInstallable == false)
        fleet.run(until: fleet.now + 10_000)
        for i in 1..<4 { #expect(fleet.nodes[i].heldRelease == nil) }
        #expect(fleet.nodes.allSatisfy { $0.updateState == .committed })
        // Signed by another key: refused at the door, with the reason.
        let other = try Ed25519.SigningKey(seed: [UInt8](repeating: 1, count: 32))
        let foreign = try ReleaseBuilder.build(
            image: [UInt8](repeating: 1, count: 100_000), product: "acme-gw", version: 9, createdAt: 1,
            policy: RolloutPolicy(), key: other)
        let refused = ReleaseSwarmTests.push(foreign, to: 1, in: fleet)
        #expect(refused.first?.pushResult == .refused)
        #expect(refused.first?.reason.contains("untrusted") == true)
        #expect(fleet.nodes[1].heldRelease == nil)
    }

    /// After a rollout the fleet goes quiet: an hour costs each node its probes and a few advertisements.
    /// A node that missed the announcement keeps advertising the same status (same sequence) to one peer per
    /// Trickle interval. A holder must answer each of them with the release, not only the first time it heard
    /// that status: in a fleet of thousands, the first copy usually arrives relayed by someone else.
    @Test func aNodeBehindIsToldOfTheReleaseEveryTimeItAdvertises() throws {
        let (fleet, built) = try ReleaseSwarmTests.pushedToOneOfTwo(seed: 4, size: 100_000)
        let holder = fleet.nodes[0]
        let behindIdentity = NodeIdentity(signingKey: try Ed25519.SigningKey(seed: [UInt8](repeating: 0xB0, count: 32)))
        let behind = behindIdentity.signed(
            NodeStatus(
                node: behindIdentity.id, productTag: ReleaseAdvert.productTag("acme-gw"), sequence: 7,
                installedVersion: 1, targetVersion: 0, state: .committed, chunksHave: 0, chunksTotal: 0))
        let sealer = FrameSealer(sender: behind.node, keyring: TestFleet.keyring, encryptionEnabled: true)
        var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
        let from = SocketAddress(ipv4: 10, 9, 9, 9, port: 7946)
        // The behind node is a member, so that the holder knows where to answer.
        let join = Message(
            type: .gossip, digest: 0,
            items: [
                .member(behindIdentity.record(incarnation: 1, address: from))
            ])
        holder.handleDatagram(
            sealer.seal(join.encode(), messageClass: .control, sequence: 1, nonce: [UInt8](repeating: 1, count: 24)),
            from: from, now: fleet.now)
        while holder.pollTransmit() != nil {}
        for k in 0..<3 {
            let advert = Message(type: .gossip, digest: 0, items: [.status(behind)])
            let frame = sealer.seal(
                advert.encode(), messageClass: .control, sequence: UInt64(2 + k),
                nonce: [UInt8](repeating: UInt8(2 + k), count: 24))
            holder.handleDatagram(frame, from: from, now: fleet.now + UInt64(k))
            var told = false
            while let t = holder.pollTransmit() {
                guard case .datagram(let to, let bytes) = t, to == from,
                    let opened = try? opener.open(bytes, transport: .datagram),
                    let m = try? Message.decode(opened.payload, itemsMax: Message.datagramItemsMax)
                else { continue }
                told =
                    told
                    || m.items.contains {
                        if case .release(let a) = $0 { a.releaseID == built.manifest.releaseID } else { false }
                    }
            }
            #expect(told, "advertisement \(k + 1) of the same status went unanswered")
        }
    }

    /// The node a release was pushed to serves every chunk once before it serves any twice: two requesters
    /// asking for the same chunk get different ones, each reply naming the chunk it carries; once every chunk
    /// has left it, requests are answered as asked.
    @Test func theOriginServesEachChunkOnceBeforeAnyTwice() throws {
        let (fleet, built) = try ReleaseSwarmTests.pushedToOneOfTwo(seed: 6, size: 300_000)
        let origin = fleet.nodes[0]
        let count = built.chunks.count
        #expect(count >= 3)
        var sequence: UInt64 = 0
        /// Chunk `index` asked of the origin by requester `who`; returns the index and bytes of the reply.
        func ask(_ index: Int, as who: UInt64) -> (Int, [UInt8])? {
            let sealer = FrameSealer(sender: NodeID(rawValue: who), keyring: TestFleet.keyring, encryptionEnabled: true)
            var opener = FrameOpener(keyring: TestFleet.keyring, requireEncryption: true, senderCapacity: 4)
            sequence += 1
            let request = TransferMessage(
                type: .chunkRequest, releaseID: built.manifest.releaseID, index: UInt16(index))
            let frame = sealer.seal(
                request.encode(), messageClass: .data, sequence: sequence,
                nonce: [UInt8](repeating: UInt8(sequence & 0xff), count: 24))
            origin.handleStreamFrame(frame, stream: .accepted(800_000 + sequence), now: fleet.now)
            fleet.serviceStorage(0)
            // The chunk comes as its pieces, in order, each naming the chunk; the last is the reply's end.
            var index: Int?
            var bytes: [UInt8] = []
            var complete = false
            while let t = origin.pollTransmit() {
                let frame: [UInt8]
                switch t {
                case .streamPart(_, let f): frame = f
                case .streamReply(_, let f):
                    frame = f
                    complete = true
                default: continue
                }
                guard let opened = try? opener.open(frame, transport: .stream),
                    let m = try? TransferMessage.decode(opened.payload), m.type == .chunkPiece
                else { continue }
                #expect(index == nil || index == Int(m.index), "pieces of one reply name different chunks")
                #expect(bytes.count == Int(m.piece) * 16_384, "piece \(m.piece) out of order")
                index = Int(m.index)
                bytes += m.payload
            }
            guard complete, let index else { return nil }
            return (index, bytes)
        }
        let first = ask(0, as: 0xA1)
        let second = ask(0, as: 0xA2)
        #expect(first?.0 == 0)
        #expect(first.map { $0.1 == built.chunks[0] } == true)
        #expect(second?.0 != nil && second?.0 != 0, "the same chunk twice while others had never left")
        if let (k, bytes) = second { #expect(bytes == built.chunks[k], "chunk \(k) served wrong") }
        // Each chunk leaves once; then a chunk asked for is the chunk served.
        var servedOnce = Set([first?.0, second?.0].compactMap { $0 })
        for _ in 0..<count where servedOnce.count < count {
            guard let (k, _) = ask(0, as: 0xA3) else { break }
            #expect(!servedOnce.contains(k), "chunk \(k) served twice before every chunk once")
            servedOnce.insert(k)
        }
        #expect(servedOnce.count == count)
        #expect(ask(1, as: 0xA4)?.0 == 1)
        #expect(ask(1, as: 0xA5)?.0 == 1)
    }

    @Test func settledFleetAdvertisesRarely() throws {
        let fleet = TestFleet(count: 8, seed: 12, release: ReleaseSwarmTests.settings())
        #expect(fleet.runUntil(deadline: 10_000) { fleet.converged() } != nil)
        ReleaseSwarmTests.push(try ReleaseSwarmTests.release(version: 2, size: 200_000), to: 0, in: fleet)
        #expect(fleet.runUntil(deadline: fleet.now + 30_000) { ReleaseSwarmTests.complete(fleet) } != nil)
        for n in fleet.nodes { n.reportUpdate(.committed, installedVersion: 2, now: fleet.now) }
        fleet.run(until: fleet.now + 3_600_000)  // Trickle intervals grow to their maximum
        let before = fleet.nodes.map { $0.counters.advertisementsSent }
        fleet.run(until: fleet.now + 3_600_000)
        let sent = fleet.nodes.enumerated().map { $1.counters.advertisementsSent - before[$0] }
        // Trickle at its longest interval (1,024 s): at most about 3.5 per node per hour, fewer when suppressed.
        #expect(sent.allSatisfy { $0 <= 4 }, "advertisements per node in an hour: \(sent)")
        #expect(sent.reduce(0, +) >= 4, "the fleet stopped advertising altogether: \(sent)")
        print("settled fleet: advertisements per node in an hour: \(sent)")
    }

    @Test func trickleBacksOffWhenNothingChanges() {
        var rng = DeterministicRandom(seed: 1)
        var t = Trickle(minimum: 1_000, maximum: 1_024_000, redundancy: 1, now: 0, rng: &rng)
        var sent = 0
        var now: UInt64 = 0
        var sentInLastHour = 0
        while now < 5 * 3_600_000 {
            now = t.deadline
            if t.poll(now: now, rng: &rng) {
                sent += 1
                if now >= 4 * 3_600_000 { sentInLastHour += 1 }
            }
        }
        // Alone, it doubles up to ~17 minutes: 11 doublings, then about 3.5 per hour.
        #expect(sentInLastHour >= 3 && sentInLastHour <= 4)
        #expect(sent < 30)
        // Hearing one consistent advertisement per interval suppresses its own.
        var quiet = Trickle(minimum: 1_000, maximum: 8_000, redundancy: 1, now: 0, rng: &rng)
        quiet.hearConsistent()
        #expect(quiet.poll(now: quiet.deadline, rng: &rng) == false)
        while quiet.interval < 8_000 { _ = quiet.poll(now: quiet.deadline, rng: &rng) }
        // An inconsistency brings it back to the minimum at once.
        quiet.hearInconsistent(now: 100_000, rng: &rng)
        #expect(quiet.interval == 1_000)
        #expect(quiet.deadline >= 100_500 && quiet.deadline < 101_000)
    }
}
