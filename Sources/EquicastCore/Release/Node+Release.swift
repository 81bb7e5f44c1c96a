import EquicastCrypto

/// What a node needs to take part in releases, and how fast it talks about them.
public struct ReleaseSettings: Sendable {
    /// Release public keys this device trusts. Empty: the node relays nothing and installs nothing.
    public var trustedKeys: [Ed25519.PublicKey] = []
    /// This device's product (hardware compatibility) string; releases for another product are not installed.
    public var product: String = ""
    /// The firmware version running now (0: none recorded).
    public var installedVersion: UInt64 = 0
    /// The update state persisted by the driver (a restart mid-update resumes from it).
    public var updateState: UpdateState = .idle
    /// Releases that failed or were refused here; they are never fetched again (they are still served).
    public var rejectedReleases: [Digest256] = []
    /// Trickle intervals (ms): the shortest (after a change) and the longest (a fleet where nothing changes
    /// sends about one advertisement per node per this long).
    public var trickleMinimum: UInt64 = 1_000
    public var trickleMaximum: UInt64 = 1_024_000
    /// Consistent advertisements heard in an interval that suppress our own (RFC 6206's k).
    public var trickleRedundancy = 1
    /// Chunk requests outstanding to one peer (one to a peer that holds every chunk), and in all. Twenty-four in
    /// all keep a 20 Mbit/s download busy while the peers' uplinks are shared by many requesters (bench/rollout.py,
    /// N = 16: with eight, some hosts ran at half the rate of others; with 16, the last host installed about 0.1 s
    /// later than with 24 in two batches of 5 trials, and 32 did no better).
    public var chunkRequestsPerPeer = 2
    public var chunkRequestsMax = 24
    /// A chunk or manifest request unanswered this long (ms) is abandoned and the peer counted as failing.
    public var requestTimeout: UInt64 = 30_000
    /// How often the download's progress is gossiped: at every 1/steps of the chunks (state changes always).
    public var progressSteps = 4
    /// After the driver could not store a chunk (a full disk), the download stops and the update shows failed
    /// for this long (ms); then the node tries again. The release is not rejected: space may be freed.
    public var storageRetryInterval: UInt64 = 600_000
    #if EQUICAST_FAULT_INJECTION
        /// Debug builds only (the process tests): serve every chunk with one byte flipped after it has been
        /// checked, as a compromised peer holding the fleet key would. Release and device builds lack the field.
        public var faultServeCorruptChunks = false
    #endif

    public init() {}
}

/// A chunk request in flight: which stream, to whom, for which chunk, since when.
struct ChunkFetch {
    let stream: UInt64
    let peer: NodeID
    let address: SocketAddress
    var index: Int
    let startedAt: UInt64
    /// The piece expected next (at first the one asked for; a reply may name another chunk only in piece 0).
    var next: Int
}

/// Storage work the driver does for the node; the node itself never touches a file.
public enum StorageRequest: Equatable, Sendable {
    /// Keep this release's manifest (it is now the release this node holds), find which of its chunks are
    /// already stored (by chunk id: chunks of the running image are reused), and report with `releaseOpened`.
    case openRelease(id: Digest256, manifest: [UInt8])
    /// Store a verified chunk (compressed bytes, named by the manifest's chunk id). On failure (full disk), call
    /// `chunkStoreFailed`: the download stops, and resumes after `ReleaseSettings.storageRetryInterval`.
    case storeChunk(release: Digest256, index: Int, bytes: [UInt8])
    /// Read a stored chunk and hand it to `serveChunk(connection:requester:release:index:bytes:now:)`, nil if
    /// unreadable.
    case readChunk(connection: UInt64, requester: NodeID, release: Digest256, index: Int, from: Int)
    /// A stored chunk read back wrong: delete it (it will be fetched again).
    case discardChunk(release: Digest256, index: Int)
}

/// Releases: announcement by gossip and Trickle, manifest fetch and verification, bitfield exchange, rarest-first
/// chunk pulls from several peers, serving, and the node's update state as the fleet sees it. Wire layouts are
/// in docs/protocol.md, the manifest and chunks in docs/release-format.md.
extension Node {
    // MARK: getters

    /// The release this node holds and spreads, if any.
    public var heldRelease: ReleaseAdvert? { transfer?.advert }
    public var heldManifest: SignedManifest? { transfer?.signed }
    /// Chunk `index` of the held release, when `release` is the one held.
    public func heldChunk(_ index: Int, of release: Digest256) -> ChunkEntry? {
        guard let t = transfer, t.id == release, index >= 0, index < t.chunkCount else { return nil }
        return t.signed.manifest.chunks[index]
    }
    /// Whether this node will install the release it holds.
    public var heldReleaseInstallable: Bool { transfer?.installable ?? false }
    /// Chunks of the held release verified here.
    public var releaseHaves: ChunkBitfield? { transfer?.have }
    /// What this node knows of every node's firmware, itself included, in id order.
    public var fleetStatuses: [NodeStatus] { table.statuses.map { $0.node }.sortedIDs().map { table.status($0)! } }

    var ownStatus: NodeStatus {
        let target = transfer.flatMap { $0.installable ? $0 : nil }
        return NodeStatus(
            node: id, productTag: productTag, sequence: statusSequence, installedVersion: installedVersion,
            targetVersion: target?.version ?? 0, state: updateState, chunksHave: UInt16(target?.have.setCount ?? 0),
            chunksTotal: UInt16(target?.chunkCount ?? 0))
    }

    func sealTransfer(_ m: TransferMessage, on transport: FrameTransport, to receiver: NodeID?) -> [UInt8] {
        let frame = sealer.seal(
            m.encode(), messageClass: .data, sequence: nextSequence(transport, to: receiver), nonce: rng.bytes(24))
        counters.packetsOut += 1
        counters.bytesOut += UInt64(frame.count)
        return frame
    }

    // MARK: driver callbacks

    /// The driver stored the manifest of the release this node now holds and found `present` chunks already
    /// stored. Pulls start now.
    public func releaseOpened(_ release: Digest256, present: ChunkBitfield, now: UInt64) {
        guard var t = transfer, t.id == release, !t.opened, present.count == t.chunkCount else { return }
        transfer = nil  // edit a unique copy
        for i in 0..<present.count where present.contains(i) {
            t.have.insert(i)
            t.offered.insert(i)
        }
        t.opened = true
        transfer = t
        // Ask the neighbourhood what it holds: ring neighbours, this round's fanout, and whoever announced it.
        var targets = releaseNeighbourhood
        if let s = t.source, !targets.contains(s) { targets.append(s) }
        for m in targets { sendHaves(to: m, wantsReply: true, now: now) }
        downloadProgressed(now: now)
        schedulePulls(now: now)
    }

    /// Restores the release this node held before a restart, from the manifest the driver kept. It is verified
    /// again (a tampered state directory is refused like any other bad manifest); the update state the driver
    /// persisted is kept, and the driver is asked (`openRelease`) which chunks survived.
    public func restoreRelease(_ bytes: [UInt8], now: UInt64) -> ReleaseError? {
        let saved = updateState
        let error = acceptManifest(bytes, announced: nil, pushed: true, source: nil, now: now)
        // A download that had stopped on a full disk (failed, the release not rejected) starts again: a restart
        // is as good a moment to try as any.
        if error == nil, saved != .idle, saved != .announced, saved != .failed || !(transfer?.installable ?? false) {
            updateState = saved
            publishStatus(now: now)
        }
        return error
    }

    /// The driver could not store a chunk (full disk, I/O error): the node no longer claims it, stops
    /// downloading (fetching chunks it cannot keep would only load its peers) and reports the update failed,
    /// without rejecting the release; after `storageRetryInterval` it tries again (`releaseResumed`).
    public func chunkStoreFailed(release: Digest256, index: Int, now: UInt64) {
        guard let t = transfer, t.id == release, index >= 0, index < t.chunkCount else { return }
        transfer!.have.remove(index)
        transfer!.offered.remove(index)
        guard t.installable, storageRetryAt == 0 else { return }
        storageRetryAt = now + max(1, releaseSettings.storageRetryInterval)
        // Replies to requests in flight are dropped unread, and so are the chunks under way (no longer offered,
        // their waiting requests ended so they go elsewhere): the retry fetches them afresh.
        for f in chunkFetches { transfer!.finished(f.index, from: f.peer) }
        chunkFetches = []
        for p in transfer!.partials {
            transfer!.offered.remove(p.index)
            endWaiters(p)
        }
        transfer!.partials = []
        if updateState == .downloading {
            updateState = .failed
            publishStatus(now: now)
        }
    }

    /// The driver moved the update on (verifying, staged, installing, health check, committed, failed, rolled
    /// back) or installed a new version. Failed and rolled-back releases are never fetched again, unless
    /// `rejecting` is false (the failure `chunkStoreFailed` reported, which is tried again).
    public func reportUpdate(
        _ state: UpdateState, installedVersion version: UInt64? = nil, rejecting: Bool = true, now: UInt64
    ) {
        if let v = version { installedVersion = v }
        if rejecting, state == .failed || state == .rolledBack, let t = transfer { reject(t.id) }
        guard state != updateState || version != nil else { return }
        updateState = state
        publishStatus(now: now)
        // The end of an update is what operators wait for: advertise it again soon (Trickle from its minimum)
        // in case the gossip of it missed some nodes; statuses are not part of the membership pulls.
        if state.isFinal { trickle.hearInconsistent(now: now, rng: &rng) }
    }

    // MARK: gossip

    func heardAdvert(_ a: ReleaseAdvert, from sender: NodeID, now: UInt64) {
        if let t = transfer, t.id == a.releaseID {
            trickle.hearConsistent()
            return
        }
        guard a.productTag == productTag, !releaseSettings.trustedKeys.isEmpty else { return }
        if rejectedReleases.contains(a.releaseID) { return }
        if let t = transfer, t.installable, t.version >= a.version {
            // The sender spreads an older release: it is behind. Tell it at once, and advertise sooner.
            trickle.hearInconsistent(now: now, rng: &rng)
            if let m = table[sender] { advertise(to: sender, address: m.address) }
            return
        }
        if a.version <= installedVersion && (updateState == .committed || updateState == .idle) {
            // What we run already (or older): only a release that allows downgrades could want it, and those
            // are pushed, not pulled.
            return
        }
        if let f = manifestFetch, f.advert.version >= a.version { return }
        guard let m = table[sender], m.state.isPresent else { return }
        let sid = nextStreamID
        nextStreamID += 1
        manifestFetch = (advert: a, stream: sid, startedAt: now, peer: sender, address: m.address)
        if updateState == .idle || updateState.isFinal { updateState = .announced }
        transmits.append(
            .streamOpen(
                id: sid, to: m.address,
                bytes: sealTransfer(
                    TransferMessage(type: .manifestRequest, releaseID: a.releaseID), on: .stream, to: sender)))
    }

    func heardStatus(_ st: NodeStatus, from sender: NodeID, now: UInt64) {
        if st.node == id {
            // A status of ours from an earlier life (state lost): outrank it. An echo of the current one is not.
            if st.sequence > statusSequence {
                statusSequence = st.sequence
                publishStatus(now: now)
            }
            return
        }
        // Checked before the status is known to be news: a node that missed the announcement keeps sending the
        // same status (its Trickle advertisements), and this is how it is found.
        if st.node == sender, let t = transfer, st.productTag == t.advert.productTag,
            st.installedVersion < t.version && st.targetVersion < t.version,
            !(st.state.isFinal && st.targetVersion == t.version)
        {
            // A node that should have our release and does not know of it.
            trickle.hearInconsistent(now: now, rng: &rng)
            if let m = table[sender] { advertise(to: sender, address: m.address) }
        }
        let old = table.status(st.node)
        if let old, old.sequence >= st.sequence { return }
        guard old != nil || table.statusCount < config.membersMax else { return }
        table.setStatus(st)
        enqueueNews(.status(st), now: now)
    }

    /// One advertisement: the release we hold (if any) and our status.
    func advertise(to member: NodeID, address: SocketAddress) {
        var items: [GossipItem] = []
        if let t = transfer { items.append(.release(t.advert)) }
        items.append(.status(ownStatus))
        counters.advertisementsSent += 1
        send(Message(type: .gossip, digest: digest, items: items), to: member, address: address)
    }

    /// Tells the ring neighbours and this round's fanout of the release just accepted, at once rather than with
    /// the next gossip round: each of them fetches the manifest and does the same, so the announcement crosses
    /// the fleet in about log(N) manifest fetches (milliseconds each) instead of log(N) gossip intervals, and no
    /// node starts its download a few hundred milliseconds after the others. A few datagrams per node and release.
    func announceNow(skipping source: NodeID?) {
        for m in releaseNeighbourhood where m != source && m != id {
            if let member = table[m], member.state.isPresent { advertise(to: m, address: member.address) }
        }
    }

    /// The members a node first tells of a release and asks what they hold: its ring neighbours and this round's
    /// fanout.
    var releaseNeighbourhood: [NodeID] {
        var targets: [NodeID] = ringNeighbours
        for m in fanoutPeers(round: round &+ 1) where !targets.contains(m) { targets.append(m) }
        return targets
    }

    func publishStatus(now: UInt64) {
        statusSequence &+= 1
        let st = ownStatus
        table.setStatus(st)
        enqueueNews(.status(st), now: now)
    }

    func reject(_ release: Digest256) {
        if rejectedReleases.contains(release) { return }
        if rejectedReleases.count >= 16 { rejectedReleases.removeFirst() }
        rejectedReleases.append(release)
    }

    func fanoutPeers(round r: UInt64) -> [NodeID] {
        guard !present.isEmpty else { return [] }
        return PeerSelection.rendezvousTargets(
            selfID: id, round: r, viewDigest: digest, memberCount: present.count, count: config.fanout,
            excluding: nil
        ).map { present[$0] }
    }

    // MARK: timers

    func releaseDeadline() -> UInt64 {
        var t = trickle.deadline
        if storageRetryAt != 0 { t = min(t, storageRetryAt) }
        if let f = manifestFetch { t = min(t, f.startedAt + releaseSettings.requestTimeout) }
        for f in chunkFetches { t = min(t, f.startedAt + releaseSettings.requestTimeout) }
        if havesPending { t = min(t, nextHaves) }
        return t
    }

    /// Peers to tell that our bitfield changed: those we exchange with that still miss chunks.
    var havesPending: Bool {
        guard let t = transfer, t.opened else { return false }
        for p in t.peers.all where !p.toldCurrent && !p.banned && !p.haves.isComplete { return true }
        return false
    }

    func releaseTick(now: UInt64) {
        // A node without release keys takes no part in releases: no advertisements, no statuses.
        if trickle.poll(now: now, rng: &rng), !present.isEmpty, !isLeaving, !releaseSettings.trustedKeys.isEmpty {
            let target = fanoutPeers(round: round &+ 7)[0]
            if let m = table[target] { advertise(to: target, address: m.address) }
        }
        if let f = manifestFetch, now >= f.startedAt + releaseSettings.requestTimeout {
            manifestFetch = nil
            counters.chunkRequestsFailed += 1
        }
        var late: [UInt64] = []
        for f in chunkFetches where now >= f.startedAt + releaseSettings.requestTimeout { late.append(f.stream) }
        for sid in late { transferStreamFailed(sid, now: now) }
        guard let held = transfer else { return }
        if storageRetryAt != 0 && now >= storageRetryAt {
            storageRetryAt = 0
            if updateState == .failed && held.installable && !rejectedReleases.contains(held.id) {
                updateState = .downloading
                publishStatus(now: now)
                events.append(.releaseResumed(held.id))
                downloadProgressed(now: now)
            }
        }
        if now >= nextHaves && havesPending {
            nextHaves = now + max(1, config.gossipInterval / 2)
            var told: [NodeID] = []
            for p in transfer!.peers.all where !p.toldCurrent && !p.banned && !p.haves.isComplete {
                told.append(p.id)
            }
            for peer in told { sendHaves(to: peer, wantsReply: false, now: now) }
        }
        if let t = transfer, t.opened, !t.isComplete, chunkFetches.isEmpty, now >= nextDiscovery {
            // Nobody we know holds what we miss: ask a few more members (this round's fanout).
            nextDiscovery = now + config.gossipInterval * 5
            for m in fanoutPeers(round: round &+ 13) { sendHaves(to: m, wantsReply: true, now: now) }
        }
        schedulePulls(now: now)
    }

    // MARK: frames

    func transferPeerAddress(_ sid: UInt64) -> SocketAddress? {
        if let f = manifestFetch, f.stream == sid { return f.address }
        return chunkFetches.first { $0.stream == sid }?.address
    }

    func transferStreamFailed(_ sid: UInt64, now: UInt64) {
        if let f = manifestFetch, f.stream == sid {
            manifestFetch = nil
            counters.chunkRequestsFailed += 1
            return
        }
        guard let f = takeChunkFetch(sid) else { return }
        counters.chunkRequestsFailed += 1
        guard transfer != nil else { return }
        transfer!.finished(f.index, from: f.peer)
        if let k = transfer!.partialAt(f.index), transfer!.partials[k].stream == sid {
            transfer!.partials[k].stream = nil
        }
        if let p = transfer!.peers[f.peer] {
            if p.failures + 1 >= 3 {
                transfer!.peers[f.peer] = nil
            } else {
                transfer!.peers[f.peer]!.failures = p.failures + 1
            }
        }
    }

    /// Sends our bitfield to a peer (at `address`, or its table address).
    func sendHaves(to peer: NodeID, address: SocketAddress? = nil, wantsReply: Bool, now: UInt64) {
        guard let t = transfer, peer != id, let a = address ?? table[peer]?.address else { return }
        if t.peers[peer] != nil { transfer!.peers[peer]!.toldCurrent = true }
        let message = TransferMessage(type: .haves, releaseID: t.id, haves: t.offered, wantsReply: wantsReply)
        transmits.append(.datagram(to: a, bytes: sealTransfer(message, on: .datagram, to: peer)))
    }

    func handleTransferFrame(_ frame: OpenedFrame, stream: StreamOrigin?, from: SocketAddress, now: UInt64) {
        let sender = frame.header.sender
        let m: TransferMessage
        do throws(WireError) {
            m = try TransferMessage.decode(frame.payload)
        } catch {
            counters.decodeErrors += 1
            events.append(.refused(error, from: from))
            if case .outgoing(let sid)? = stream { transferStreamFailed(sid, now: now) }
            return
        }
        switch (m.type, stream) {
        case (.haves, nil):
            guard let h = m.haves, let t = transfer, t.id == m.releaseID, sender != id else { return }
            // The datagram's source is where the peer can be reached; a member we know gets its table address.
            let address = table[sender]?.address ?? from
            guard transfer!.noteHaves(h, of: sender, address: address, now: now) else { return }
            if m.wantsReply || !(transfer!.peers[sender]?.toldCurrent ?? true) {
                sendHaves(to: sender, address: address, wantsReply: false, now: now)
            }
            schedulePulls(now: now)
        case (.manifestRequest, .accepted(let c)):
            var reply = TransferMessage(type: .manifestReply, releaseID: m.releaseID)
            if let t = transfer, t.id == m.releaseID { reply.payload = t.signed.bytes }
            transmits.append(.streamReply(connection: c, bytes: sealTransfer(reply, on: .stream, to: sender)))
        case (.chunkRequest, .accepted(let c)):
            let index = Int(m.index)
            let from = Int(m.piece)
            if let t = transfer, t.id == m.releaseID, t.have.contains(index) {
                let serving = from == 0 ? transfer!.chunkToServe(requested: index, by: sender) : index
                storage.append(
                    .readChunk(connection: c, requester: sender, release: t.id, index: serving, from: from))
            } else if let t = transfer, t.id == m.releaseID, index < t.chunkCount, let k = t.partialAt(index),
                from < t.pieceCount(index)
            {
                answerFromPartial(k, from: from, connection: c, requester: sender)
            } else {
                endChunkReply(m.releaseID, index: index, connection: c, to: sender)
            }
        case (.manifestReply, .outgoing(let sid)):
            guard let f = manifestFetch, f.stream == sid else { return }
            manifestFetch = nil
            guard !m.payload.isEmpty, m.releaseID == f.advert.releaseID else { return }
            if let error = acceptManifest(m.payload, announced: f.advert, pushed: false, source: f.peer, now: now) {
                events.append(.releaseRefused(error, from: from))
                if updateState == .announced { updateState = installedVersion > 0 ? .committed : .idle }
            }
        case (.chunkPiece, .outgoing(let sid)):
            chunkPieceArrived(m, stream: sid, from: from, now: now)
        case (.chunkReply, .outgoing(let sid)):
            guard let f = takeChunkFetch(sid) else { return }
            guard transfer != nil else { return }
            transfer!.finished(f.index, from: f.peer)
            if let k = transfer!.partialAt(f.index), transfer!.partials[k].stream == sid {
                transfer!.partials[k].stream = nil
            }
            // No chunk bytes travel in a chunk reply: it says the peer has no (more) pieces of the chunk for us
            // (not held, damaged on its disk, or arriving there from us). Ask elsewhere, resuming the partial.
            guard m.releaseID == transfer!.id, m.payload.isEmpty else {
                counters.decodeErrors += 1
                counters.chunkRequestsFailed += 1
                return
            }
            transfer!.peers[f.peer]?.failures = 0
            if transfer!.peers[f.peer] != nil { transfer!.peers[f.peer]!.haves.remove(f.index) }
            schedulePulls(now: now)
        case (.push, .accepted(let c)):
            var reply = TransferMessage(type: .pushReply)
            if let error = acceptManifest(m.payload, announced: nil, pushed: true, source: nil, now: now) {
                events.append(.releaseRefused(error, from: from))
                reply.pushResult = .refused
                reply.reason = error.description
            } else {
                // The operator's hand-over makes this node the first source (a push of the release it already
                // holds too: the operator chose it to seed).
                if transfer != nil, !transfer!.served.isComplete { transfer!.seeding = true }
                reply.haves = transfer?.have
            }
            transmits.append(.streamReply(connection: c, bytes: sealTransfer(reply, on: .stream, to: sender)))
        case (.pushChunk, .accepted(let c)):
            var reply = TransferMessage(type: .pushReply)
            let index = Int(m.index)
            if let t = transfer, t.id == m.releaseID, index < t.chunkCount {
                if t.matches(m.payload, index: index) {
                    if !t.have.contains(index) { chunkVerified(index, bytes: m.payload, now: now) }
                } else {
                    counters.badChunks += 1
                    reply.pushResult = .refused
                    reply.reason = ReleaseError.badChunk(index: index, reason: "does not match its id").description
                }
                reply.haves = transfer!.have
            } else {
                reply.pushResult = .refused
                reply.reason = "no pushed manifest for this release on this node"
            }
            transmits.append(.streamReply(connection: c, bytes: sealTransfer(reply, on: .stream, to: sender)))
        case (.statusRequest, .accepted(let c)):
            var statuses = [ownStatus]
            for st in fleetStatuses where st.node != id { statuses.append(st) }
            let reply = TransferMessage(
                type: .statusReply, statuses: Array(statuses.prefix(TransferMessage.statusesMax)),
                advert: transfer?.advert)
            transmits.append(.streamReply(connection: c, bytes: sealTransfer(reply, on: .stream, to: sender)))
        default:
            counters.decodeErrors += 1
            if case .outgoing(let sid)? = stream { transferStreamFailed(sid, now: now) }
        }
    }

    // MARK: manifests and chunks

    /// Verifies a manifest (signature by a trusted key, then for a fetched one: the announced id, the product
    /// and the version) and, when it is newer than what this node holds, makes it the held release. A pushed
    /// release is held even when this node cannot install it (it spreads it to those that can). Returns why a
    /// manifest was refused.
    func acceptManifest(
        _ bytes: [UInt8], announced: ReleaseAdvert?, pushed: Bool, source: NodeID?, now: UInt64
    ) -> ReleaseError? {
        let signed: SignedManifest
        do throws(ReleaseError) {
            signed = try SignedManifest.open(bytes, trustedKeys: releaseSettings.trustedKeys)
        } catch {
            counters.manifestsRefused += 1
            if let a = announced { reject(a.releaseID) }
            return error
        }
        if let a = announced, signed.releaseID != a.releaseID {
            counters.manifestsRefused += 1
            reject(a.releaseID)
            return .invalidField(field: "release id", reason: "the manifest is not the one announced")
        }
        if let t = transfer, t.id == signed.releaseID { return nil }
        var installable = !rejectedReleases.contains(signed.releaseID)
        do throws(ReleaseError) {
            try signed.checkEligible(
                product: releaseSettings.product, installedVersion: installedVersion == 0 ? nil : installedVersion)
        } catch {
            if !pushed {
                counters.manifestsRefused += 1
                reject(signed.releaseID)
                return error
            }
            installable = false
            events.append(.releaseRefused(error, from: address))
        }
        if let t = transfer, t.version >= signed.manifest.version, t.installable || !installable {
            if pushed {
                return .notNewer(installed: t.version, offered: signed.manifest.version)
            }
            return nil
        }
        counters.manifestsAccepted += 1
        chunkFetches = []
        storageRetryAt = 0
        var t = ReleaseTransfer(signed: signed, installable: installable)
        t.source = source
        transfer = t
        publishedTenth = -1
        storage.append(.openRelease(id: t.id, manifest: signed.bytes))
        events.append(.releaseAccepted(t.advert, installable: installable))
        enqueueNews(.release(t.advert), now: now)
        trickle.hearInconsistent(now: now, rng: &rng)
        if installable {
            updateState = .downloading
            publishStatus(now: now)
        }
        announceNow(skipping: source)
        return nil
    }

    func chunkVerified(_ index: Int, bytes: [UInt8], now: UInt64) {
        guard transfer != nil, !transfer!.have.contains(index) else { return }
        transfer!.have.insert(index)
        counters.chunksVerified += 1
        storage.append(.storeChunk(release: transfer!.id, index: index, bytes: bytes))
        if let k = transfer!.partialAt(index) {
            // Whole by another way (an operator pushed it) while its pieces were arriving: whoever waits for them
            // gets the rest from the chunk.
            let p = transfer!.partials.remove(at: k)
            for w in p.waiting {
                sendPieces(of: bytes, index: index, from: w.next, connection: w.connection, to: w.requester)
            }
        }
        if !transfer!.offered.contains(index) {
            transfer!.offered.insert(index)
            transfer!.peers.markUntold(lacking: index)
        }
        downloadProgressed(now: now)
    }

    /// Gossips progress at every 1/progressSteps of the chunks; a complete installable release goes to the
    /// driver to assemble and install.
    func downloadProgressed(now: UInt64) {
        guard let t = transfer, t.installable, t.opened, updateState == .downloading else { return }
        let steps = max(1, releaseSettings.progressSteps)
        let step = t.have.setCount * steps / max(1, t.chunkCount)
        if t.isComplete {
            updateState = .verifying
            publishStatus(now: now)
            events.append(.releaseDownloaded(t.id))
        } else if step > publishedTenth {
            publishedTenth = step
            publishStatus(now: now)
        }
    }

    func takeChunkFetch(_ sid: UInt64) -> ChunkFetch? {
        guard let k = chunkFetches.firstIndex(where: { $0.stream == sid }) else { return nil }
        return chunkFetches.remove(at: k)
    }

    func schedulePulls(now: UInt64) {
        guard let t = transfer, t.opened, !t.isComplete, !isLeaving, storageRetryAt == 0 else { return }
        let picks = t.choose(
            perPeer: releaseSettings.chunkRequestsPerPeer, total: releaseSettings.chunkRequestsMax,
            inFlightNow: chunkFetches.count, rng: &rng)
        for (peer, index) in picks {
            guard let address = transfer!.peers[peer]?.address else { continue }
            let sid = nextStreamID
            nextStreamID += 1
            let from = t.partialAt(index).map { t.partials[$0].pieces } ?? 0
            chunkFetches.append(
                ChunkFetch(
                    stream: sid, peer: peer, address: address, index: index, startedAt: now, next: from))
            transfer!.started(index, from: peer)
            let request = TransferMessage(
                type: .chunkRequest, releaseID: t.id, index: UInt16(index), piece: UInt16(from))
            transmits.append(.streamOpen(id: sid, to: address, bytes: sealTransfer(request, on: .stream, to: peer)))
        }
    }
}
