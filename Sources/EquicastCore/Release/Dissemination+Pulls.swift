import EquicastCrypto

/// Pulling chunks: bitfields exchanged with peers, rarest-first requests, requests that fail or time out, and
/// the periodic release work (Trickle, timeouts, the storage retry, owed bitfields, discovery).
extension Dissemination {
    /// The release timers that are due (a wake-up with none due does nothing): Trickle, requests that ran out
    /// of time, the retry after a storage failure, bitfields owed, and discovery.
    mutating func handleTimers(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        rearmTimers(&ctx.timers)
        // A node without release keys takes no part in releases: no advertisements, no statuses.
        if ctx.timers.isDue(.trickle, at: now), trickle.poll(now: now, rng: &ctx.rng), members.presentCount > 0,
            !members.isLeaving, !settings.trustedKeys.isEmpty
        {
            let target = members.fanoutPeers(round: members.round &+ Dissemination.advertRoundOffset)[0]
            if let m = members.member(target) {
                advertise(to: target, address: m.address, members: &members, ctx: &ctx)
            }
        }
        if ctx.timers.isDue(.requestTimeout, at: now) { requestsTimedOut(now: now, members: &members, ctx: &ctx) }
        guard let held = transfer else { return }
        if ctx.timers.isDue(.storageRetry, at: now) {
            storageRetryAt = 0
            if updateState == .failed && held.installable && !rejectedReleases.contains(held.id) {
                updateState = .downloading
                publishStatus(now: now, members: &members, ctx: &ctx)
                ctx.events.append(.releaseResumed(held.id))
                downloadProgressed(now: now, members: &members, ctx: &ctx)
            }
            schedulePulls(now: now, members: &members, ctx: &ctx)
        }
        rearmTimers(&ctx.timers)  // requests may have started or ended above
        if ctx.timers.isDue(.haves, at: now) {
            nextHaves = now + max(1, members.config.gossipInterval / 2)
            var told: [NodeID] = []
            for p in transfer!.peers.all where !p.toldCurrent && !p.banned && !p.haves.isComplete {
                told.append(p.id)
            }
            for peer in told { sendHaves(to: peer, wantsReply: false, members: &members, ctx: &ctx) }
        }
        if ctx.timers.isDue(.discovery, at: now) {
            // Nobody we know holds what we miss: ask a few more members (this round's fanout).
            nextDiscovery = now + members.config.gossipInterval * Dissemination.discoveryIntervals
            for m in members.fanoutPeers(round: members.round &+ Dissemination.discoveryRoundOffset) {
                sendHaves(to: m, wantsReply: true, members: &members, ctx: &ctx)
            }
        }
    }

    /// The manifest and chunk requests whose time ran out fail; their slots go to new requests.
    mutating func requestsTimedOut(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        if let f = manifestFetch, now >= f.startedAt + settings.requestTimeout {
            manifestFetch = nil
            ctx.counters.chunkRequestsFailed += 1
        }
        var late: [UInt64] = []
        for f in chunkFetches where now >= f.startedAt + settings.requestTimeout { late.append(f.stream) }
        for sid in late { streamFailed(sid, ctx: &ctx) }
        if !late.isEmpty { schedulePulls(now: now, members: &members, ctx: &ctx) }
    }

    /// Sends our bitfield to a peer (at `address`, or its table address).
    @inline(never)
    mutating func sendHaves(
        to peer: NodeID, address: SocketAddress? = nil, wantsReply: Bool, members: inout Membership,
        ctx: inout NodeContext
    ) {
        // A withheld release is nobody's business yet (no peer holds it).
        guard transfer != nil, !transfer!.withheld, peer != id, let a = address ?? members.member(peer)?.address
        else { return }
        transfer!.markTold(peer)
        let message = TransferMessage(
            type: .haves, releaseID: transfer!.id, haves: transfer!.offered, wantsReply: wantsReply)
        ctx.transmits.append(.datagram(to: a, bytes: ctx.seal(message, on: .datagram, to: peer)))
    }

    /// Requests chunks, rarest first, while request slots are free.
    @inline(never)
    mutating func schedulePulls(now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        guard let t = transfer, t.opened, !t.isComplete, !members.isLeaving, storageRetryAt == 0 else { return }
        let picks = t.choose(
            perPeer: settings.chunkRequestsPerPeer, total: settings.chunkRequestsMax,
            inFlightNow: chunkFetches.count, rng: &ctx.rng)
        for (peer, index) in picks {
            guard let address = transfer!.peers[peer]?.address else { continue }
            let sid = ctx.takeStreamID()
            let from = t.partialAt(index).map { t.partials[$0].pieces } ?? 0
            chunkFetches.append(
                ChunkFetch(stream: sid, peer: peer, address: address, index: index, startedAt: now, next: from))
            transfer!.started(index, from: peer)
            let request = TransferMessage(
                type: .chunkRequest, releaseID: t.id, index: UInt16(index), piece: UInt16(from))
            ctx.transmits.append(.streamOpen(id: sid, to: address, bytes: ctx.seal(request, on: .stream, to: peer)))
        }
    }

    func chunkFetchIndex(_ sid: UInt64) -> Int? { chunkFetches.firstIndex { $0.stream == sid } }

    mutating func takeChunkFetch(_ sid: UInt64) -> ChunkFetch? {
        guard let k = chunkFetchIndex(sid) else { return nil }
        return chunkFetches.remove(at: k)
    }

    /// Where the transfer request on stream `sid` went, while it is in flight.
    func peerAddress(stream sid: UInt64) -> SocketAddress? {
        if let f = manifestFetch, f.stream == sid { return f.address }
        return chunkFetches.first { $0.stream == sid }?.address
    }

    /// A manifest or chunk request failed (no connection, broken, refused, a reply out of step): a chunk
    /// request's slot goes to a new request at once.
    mutating func requestFailed(_ sid: UInt64, now: UInt64, members: inout Membership, ctx: inout NodeContext) {
        let wasChunk = chunkFetchIndex(sid) != nil
        streamFailed(sid, ctx: &ctx)
        if wasChunk { schedulePulls(now: now, members: &members, ctx: &ctx) }
    }

    /// A manifest or chunk request ended without a usable reply (no connection, broken, refused, timed out).
    @inline(never)
    mutating func streamFailed(_ sid: UInt64, ctx: inout NodeContext) {
        if let f = manifestFetch, f.stream == sid {
            manifestFetch = nil
            ctx.counters.chunkRequestsFailed += 1
            return
        }
        guard let f = takeChunkFetch(sid) else { return }
        ctx.counters.chunkRequestsFailed += 1
        guard transfer != nil else { return }
        transfer!.fetchFailed(f.index, from: f.peer, stream: sid)
    }
}
