import EquicastCore
import EquicastCrypto

/// The adversary scenario's hostile nodes: a fraction of the fleet that holds the fleet key (as any device
/// does) and, besides doing its part like any node, sends well-sealed hostile messages to honest nodes every
/// gossip interval from `attackAt` to the end of the fault phase. They hold their own node keys and no one
/// else's (they sign only for themselves and for members they make up), and they choose every field: forged
/// claims about honest nodes at extreme incarnations, made-up members in bulk, statuses with extreme sequence
/// numbers, frames under other senders' ids at the end of the sequence space, replays of honest datagrams,
/// random payloads behind a valid seal, release announcements for releases that do not exist, and pull
/// requests stuffed with made-up members. Everything is drawn from the run's generator, so a run replays. Each
/// adversary makes up `madeUpPerAdversary` members before the attack and announces them over and over: their
/// ids are registered in the shared member directory then (the threads that run nodes must only read it), and
/// a bounded number of them keeps every node's table, sized to the directory, within memory.
extension Simulator {
    /// What the adversaries sent, by kind (the names `hostileKindNames` gives).
    static let hostileKindNames = [
        "forged claims", "made-up members", "forged statuses", "spoofed senders", "replays", "garbage payloads",
        "bogus releases", "stuffed pulls", "probe floods",
    ]
    /// The same, as `--attacks` names them.
    public static let attackNames = [
        "claims", "members", "statuses", "spoof", "replay", "garbage", "releases", "pulls", "probes",
    ]

    /// Members each adversary makes up (ten times the fleet in all, at 5% adversaries).
    static let madeUpPerAdversary = 200

    func scheduleAttack() {
        let o = options
        adversarySlots = pickNodes(fraction: o.adversaryFraction)
        isAdversary = [Bool](repeating: false, count: o.nodeCount)
        for a in adversarySlots { isAdversary[a] = true }
        for _ in 0..<(adversarySlots.count * Simulator.madeUpPerAdversary) {
            let fake = NodeIdentity(simulated: NodeID(rawValue: rng.next()))
            let address =
                rng.below(2) == 0
                ? Simulator.address(rng.below(o.nodeCount))
                : SocketAddress(ipv4: 192, 0, 2, UInt8(truncatingIfNeeded: rng.next()), port: Simulator.port)
            directory.register(fake.id, address: address, key: fake.publicKey)
            madeUp.append((fake.id, address))
        }
        hostileSent = [UInt64](repeating: 0, count: Simulator.hostileKindNames.count)
        var t = o.attackAt
        while t < o.faultPhase {
            queue.push(.fault(.attack), at: t * 1000)
            t += o.membership.gossipInterval
        }
        // Honest nodes crash while the attack goes on: their failures must still be detected in time.
        let honest = (1..<o.nodeCount).filter { !isAdversary[$0] }
        var victims = honest
        let count = min(honest.count, Int((Double(o.nodeCount) * o.crashFraction).rounded()))
        for i in 0..<count {
            let j = i + rng.below(victims.count - i)
            victims.swapAt(i, j)
        }
        adversaryVictims = Array(victims.prefix(count))
        for v in adversaryVictims { queue.push(.fault(.crash(Int32(v))), at: o.crashAt * 1000) }
    }

    /// adversary: whether every live honest node holds every crashed victim failed or left (or has forgotten
    /// it). Judged from the nodes' tables, not their events: a forged claim may have marked a victim failed
    /// before it crashed, and then no event follows the crash.
    var victimsMarkedFailed: Bool {
        for (i, s) in slots.enumerated() where s.up && !isAdversary[i] {
            for v in adversaryVictims {
                if let m = s.node!.member(slots[v].id), m.state.isPresent { return false }
            }
        }
        return true
    }

    /// adversary: live honest nodes whose view of the honest nodes is right: every live one alive at its
    /// incarnation, every crashed one not present. The adversaries' own records are theirs to spoil (pushing
    /// their own replay windows ahead, they silence themselves), and members they made up are counted apart
    /// (`madeUpMembersHeld`).
    var honestViewCount: Int {
        var right = 0
        for (i, s) in slots.enumerated() where s.up && !isAdversary[i] {
            let node = s.node!
            var ok = true
            for (j, t) in slots.enumerated() where !isAdversary[j] {
                let m = node.member(t.id)
                if t.up {
                    guard let m, m.state == .alive, m.incarnation == t.node!.incarnation else {
                        ok = false
                        break
                    }
                } else if let m, m.state.isPresent {
                    ok = false
                    break
                }
            }
            if ok { right += 1 }
        }
        return right
    }

    /// adversary: the first `limit` ways in which live nodes' views are wrong, for the report of a failed run.
    public func honestViewErrors(limit: Int) -> [String] {
        var out: [String] = []
        for (i, s) in slots.enumerated() where s.up && !isAdversary[i] {
            let node = s.node!
            for (j, t) in slots.enumerated() where !isAdversary[j] {
                let m = node.member(t.id)
                let held = m.map { "\($0.state) at \($0.incarnation)" } ?? "unknown"
                let wrong =
                    t.up ? m?.state != .alive || m?.incarnation != t.node!.incarnation : m?.state.isPresent == true
                if wrong {
                    let truth = t.up ? "up at \(t.node!.incarnation)" : "down"
                    out.append("node \(i) holds node \(j) (\(t.id)) \(held); it is \(truth)")
                    if out.count >= limit { return out }
                }
            }
        }
        return out
    }

    /// adversary: present members that are no node of the fleet, per live honest node (at most; a node may
    /// lack a live node and hold a made-up one more).
    var madeUpMembersHeld: Double {
        var held = 0
        var honest = 0
        for (i, s) in slots.enumerated() where s.up && !isAdversary[i] {
            held += max(0, s.node!.presentCount + 1 - liveCount)
            honest += 1
        }
        return Double(held) / Double(max(1, honest))
    }

    /// adversary, at every sample: the moment every survivor holds the victims failed (checked against the
    /// bound), and, once the attack is over, the moment every live node's view of the fleet is right.
    func sampleAdversaryRun() {
        let crashed = now / 1000 >= options.crashAt && !adversaryVictims.isEmpty
        if crashed && crashDetectedAt == nil && victimsMarkedFailed {
            crashDetectedAt = now
            if now / 1000 > options.crashAt + options.detectionBound {
                violate(
                    "the survivors marked the crashed nodes failed \(now / 1000 - options.crashAt) ms after the crash, "
                        + "over the bound of \(options.detectionBound) ms")
            }
        }
        if faultPhaseOver && convergedAt == nil && honestViewCount == liveCount - adversarySlots.count {
            convergedAt = now / 1000
            madeUpMembersAtEnd = madeUpMembersHeld
        }
    }

    /// One round of the attack: each live adversary sends `adversaryRate` hostile messages to honest nodes.
    func attack() {
        let honest = (0..<options.nodeCount).filter { !isAdversary[$0] }
        for a in adversarySlots where slots[a].up {
            for _ in 0..<options.adversaryRate {
                let target = honest[rng.below(honest.count)]
                sendHostile(from: a, to: target)
            }
        }
    }

    /// Keeps a few honest datagrams for the adversaries to replay.
    func noteForReplay(_ bytes: [UInt8]) {
        if capturedDatagrams.count < 64 {
            capturedDatagrams.append(bytes)
        } else if rng.below(64) == 0 {
            capturedDatagrams[rng.below(64)] = bytes
        }
    }

    /// One of adversary `a`'s made-up members: its identity and the address it is announced at.
    private func madeUpMember(of a: Int) -> (NodeIdentity, SocketAddress) {
        let k =
            adversarySlots.firstIndex(of: a)! * Simulator.madeUpPerAdversary + rng.below(Simulator.madeUpPerAdversary)
        return (NodeIdentity(simulated: madeUp[k].id), madeUp[k].address)
    }

    private func sendHostile(from a: Int, to t: Int) {
        guard let me = slots[a].node else { return }
        let kind = options.attacks[rng.below(options.attacks.count)]
        hostileSent[kind] += 1
        var sender = me.id
        var sequence = me.incarnation &+ UInt64(rng.below(1 << 20))
        var messageClass = MessageClass.control
        var payload: [UInt8]
        switch kind {
        case 0:
            // Claims about an honest node: suspect, failed or left, at its incarnation, the next, or the last.
            var items: [GossipItem] = []
            for _ in 0..<8 {
                let victim = rng.below(options.nodeCount)
                let incarnation = slots[victim].node?.incarnation ?? 0
                let state: MemberState = [.suspect, .failed, .left, .alive][rng.below(4)]
                var u = MemberUpdate(
                    state: state, id: slots[victim].id,
                    incarnation: [incarnation, incarnation &+ 1, .max, 0][rng.below(4)],
                    address: Simulator.address(rng.below(options.nodeCount)), reporter: me.id)
                if rng.below(2) == 0 { u.proof = MemberProof(key: rng.bytes(32), signature: rng.bytes(64)) }
                items.append(.member(u))
            }
            payload = Message(type: .gossip, digest: rng.next(), items: items).encode()
        case 1:
            // Members of its own making, signed with keys it made, some at the addresses of honest nodes.
            var items: [GossipItem] = []
            for _ in 0..<8 {
                let (fake, address) = madeUpMember(of: a)
                items.append(.member(fake.record(incarnation: rng.next() >> UInt64(rng.below(64)), address: address)))
            }
            payload = Message(type: .gossip, digest: rng.next(), items: items).encode()
        case 2:
            // Statuses about honest nodes at the end of the sequence space, unsigned or signed by the wrong key,
            // and extreme ones about itself, signed.
            let victim = rng.below(options.nodeCount)
            var st = NodeStatus(
                node: slots[victim].id, productTag: rng.next(), sequence: [.max, rng.next()][rng.below(2)],
                installedVersion: rng.next(), targetVersion: .max, state: .committed, chunksHave: .max,
                chunksTotal: UInt16(truncatingIfNeeded: rng.next()))
            if rng.below(2) == 0 { st.signature = rng.bytes(64) }
            var own = st
            own.node = me.id
            own = NodeIdentity(simulated: me.id).signed(own)
            payload = Message(type: .gossip, digest: rng.next(), items: [.status(st), .status(own)]).encode()
        case 3:
            // A frame under another node's id, numbered at the end of its epoch or of the sequence space.
            let victim = slots[rng.below(options.nodeCount)]
            sender = victim.id
            let epoch = (victim.node?.incarnation ?? 0) >> 32
            sequence = [UInt64.max, (epoch + 1) << 32, epoch << 32 | 0xffff_ffff][rng.below(3)]
            payload = Message(type: .gossip, digest: rng.next()).encode()
        case 4:
            // A datagram an honest node sent, again.
            if capturedDatagrams.isEmpty { return }
            network.sendDatagram(
                from: a, to: t, bytes: capturedDatagrams[rng.below(capturedDatagrams.count)], now: now, rng: &rng,
                queue: &queue)
            return
        case 5:
            // Bytes of any kind behind a valid seal, in either message class.
            payload = rng.bytes(rng.below(1_100))
            if rng.below(2) == 0 { messageClass = .data }
            if rng.below(2) == 0, !payload.isEmpty { payload[0] = UInt8(1 + rng.below(6)) }
        case 6:
            // Announcements of releases that do not exist, at any version and size.
            let advert = ReleaseAdvert(
                releaseID: Digest256(hashing: rng.bytes(8)), version: rng.next(), productTag: rng.next(),
                chunkCount: UInt16(truncatingIfNeeded: rng.next()),
                manifestByteCount: UInt32(truncatingIfNeeded: rng.next()))
            payload = Message(type: .gossip, digest: rng.next(), items: [.release(advert)]).encode()
        case 7:
            // A pull request carrying a hundred made-up members and bucket counts of its choosing.
            var items: [GossipItem] = [
                .member(NodeIdentity(simulated: me.id).record(incarnation: me.incarnation, address: me.address))
            ]
            for _ in 0..<100 {
                let (fake, address) = madeUpMember(of: a)
                items.append(.member(fake.record(incarnation: 1, address: address)))
            }
            let request = Message(
                type: .syncRequest, digest: rng.next(), items: items,
                bucketDigests: (0..<256).map { _ in rng.next() }, bucketCounts: (0..<256).map { _ in UInt16.max })
            let frame = FrameSealer(sender: me.id, keyring: keyring, encryptionEnabled: options.encryptionEnabled)
                .seal(request.encode(), messageClass: .control, sequence: sequence, nonce: rng.bytes(24))
            hostileStreams &+= 1
            network.openStream(
                from: a, to: t, stream: 1 << 62 | hostileStreams, bytes: frame, now: now, rng: &rng, queue: &queue)
            return
        default:
            // Pings and ping requests for made-up members and honest ones, at addresses of its choosing.
            let target = rng.below(2) == 0 ? NodeID(rawValue: rng.next()) : slots[rng.below(options.nodeCount)].id
            payload = Message(
                type: rng.below(2) == 0 ? .ping : .pingRequest, digest: rng.next(),
                probeID: UInt32(truncatingIfNeeded: rng.next()), target: target,
                targetAddress: Simulator.address(rng.below(options.nodeCount))
            ).encode()
        }
        let frame = FrameSealer(sender: sender, keyring: keyring, encryptionEnabled: options.encryptionEnabled)
            .seal(payload, messageClass: messageClass, sequence: sequence, nonce: rng.bytes(24))
        network.sendDatagram(from: a, to: t, bytes: frame, now: now, rng: &rng, queue: &queue)
    }
}
