/// Membership messages: what a datagram's items and type mean, and pulls over streams.
extension Membership {
    mutating func heard(_ member: NodeID, now: UInt64) {
        if member != id { table.setLastHeard(member, now) }
    }

    /// `member` answered a probe: the first time, it takes its place in the ring (if it would be a neighbour).
    @inline(never)
    mutating func answered(_ member: NodeID) {
        if table.setAnswered(member), table.presentPosition(member) != nil { ring.add(member) }
    }

    /// A gossiped member change or broadcast event (releases and statuses go to dissemination).
    mutating func absorb(_ item: GossipItem, from sender: NodeID, now: UInt64, ctx: inout NodeContext) {
        switch item {
        case .member(let u):
            ctx.counters.gossipRecordsReceived += 1
            guard mayIntroduce(u, from: sender, now: now, ctx: &ctx) else { return }
            if apply(u, now: now, ctx: &ctx) {
                ctx.counters.gossipRecordsApplied += 1
                enqueueNews(item, now: now, timers: &ctx.timers)
            }
        case .event(let e):
            if let seen = seenEvents[e.origin], seen >= e.id { return }
            seenEvents[e.origin] = e.id
            ctx.counters.eventsDelivered += 1
            ctx.events.append(.eventReceived(e))
            enqueueNews(item, now: now, timers: &ctx.timers)
        case .release, .status:
            break
        }
    }

    /// A datagram's message once its items are absorbed: the sender's digest, then pings, acks and indirect
    /// ping requests.
    mutating func handleDatagramMessage(
        _ message: Message, from sender: NodeID, address from: SocketAddress, now: UInt64, ctx: inout NodeContext
    ) {
        // After the items: a packet carrying the news that makes two views equal is not a mismatch.
        noteDigest(message.digest, from: sender, now: now, ctx: &ctx)
        switch message.type {
        case .ping:
            // A ping for another id (a restarted process reusing the address) gets no ack.
            guard message.target == id else { return }
            send(Message(type: .ack, digest: digest, probeID: message.probeID), to: sender, address: from, ctx: &ctx)
        case .ack:
            if let probe = probes.removeValue(forKey: message.probeID) {
                heard(probe.target, now: now)
                answered(probe.target)
            } else if let f = forwarded.removeValue(forKey: message.probeID) {
                send(
                    Message(type: .ack, digest: digest, probeID: f.requesterProbeID), to: nil, address: f.requester,
                    ctx: &ctx)
            }
        case .pingRequest:
            guard let target = message.targetAddress else { return }
            let probeID = takeProbeID()
            forwarded[probeID] = ForwardedProbe(
                requester: from, requesterProbeID: message.probeID, deadline: now + config.probeTimeout * 2)
            ctx.counters.indirectProbesSent += 1
            send(
                Message(type: .ping, digest: digest, probeID: probeID, target: message.target), to: message.target,
                address: target, ctx: &ctx)
        case .gossip, .syncRequest, .syncResponse:
            break
        }
    }

    /// A pull or its reply over a stream; anything else there is refused (counted as a decode error).
    mutating func handleStreamMessage(
        _ message: Message, stream: StreamOrigin, from sender: NodeID, now: UInt64, ctx: inout NodeContext
    ) {
        switch (message.type, stream) {
        case (.syncRequest, .accepted(let connection)):
            // A pull carries the requester's own record; anything else in it is no honest peer's.
            let own = message.items.filter { if case .member(let u) = $0 { u.id == sender } else { false } }
            ctx.counters.introductionsRefused += UInt64(message.items.count - own.count)
            merge(Array(own.prefix(1)), from: sender, now: now, ctx: &ctx)
            ctx.counters.syncsServed += 1
            let items: [GossipItem]
            if message.bucketDigests.isEmpty {
                items = introduction(for: sender, rng: &ctx.rng)
            } else {
                // The requester pulls what differs; if we lack something it has, we will pull it in turn.
                noteDigest(message.digest, from: sender, now: now, ctx: &ctx)
                items = differingBuckets(
                    message.bucketDigests, counts: message.bucketCounts, fingerprints: message.memberFingerprints,
                    rng: &ctx.rng)
            }
            let reply = Message(type: .syncResponse, digest: digest, items: items)
            let frame = ctx.seal(reply, on: .stream, to: sender, messageClass: .control)
            ctx.transmits.append(.streamReply(connection: connection, bytes: frame))
        case (.syncResponse, .outgoing(let sid)):
            syncReplied(message, stream: sid, from: sender, now: now, ctx: &ctx)
        default:
            ctx.counters.decodeErrors += 1
        }
    }

    /// The reply to a pull this node made.
    mutating func syncReplied(
        _ message: Message, stream sid: UInt64, from sender: NodeID, now: UInt64, ctx: inout NodeContext
    ) {
        guard pendingSyncs.removeValue(forKey: sid) != nil else { return }
        let joining = present.isEmpty
        let presentBefore = present.count
        let changed = merge(message.items, from: sender, now: now, ctx: &ctx)
        ctx.counters.syncsCompleted += 1
        pullWithFingerprints = joining || present.count >= presentBefore + Membership.fingerprintPullGain
        if changed > 0 && !joining {
            // A pull that changed our view may go on at once: a node far behind (after a mass join, a wave of
            // failures or a long partition) catches up at network speed. A reply carries only buckets that
            // differ, so this stops costing much as the views come together, and the first pull that changes
            // nothing backs off.
            syncBackoff = 0
            nextSyncAllowed = now + config.gossipInterval / 2
        }
        if joining && !present.isEmpty {
            // A joiner announces itself to the members it was introduced to (with many nodes joining through one
            // seed, the seed alone could not spread every arrival in time), then pulls the rest of the view from
            // one of them, chosen at random so that a thousand joiners do not all pull from the same node.
            enqueueNews(.member(selfUpdate), now: now, timers: &ctx.timers)
            mismatchPeer = present[ctx.rng.below(present.count)]
            nextSyncAllowed = now + config.gossipInterval / 2
        }
    }

    /// Whether gossip from `sender` may add `u` to the view: always for a member already known or for the
    /// sender's own record; otherwise within `introductionsPerSenderMax` a second from one sender and
    /// `introductionsMax` from all, so that one peer announcing made-up members in bulk fills no table. What
    /// is refused here is not lost: a real member's record reaches this node again by a pull, which this node
    /// asks for.
    mutating func mayIntroduce(_ u: MemberUpdate, from sender: NodeID, now: UInt64, ctx: inout NodeContext) -> Bool {
        if u.id == sender || u.id == id || table.stateAndIncarnation(u.id) != nil { return true }
        if now >= introductions.windowEnds {
            introductions = Introductions(windowEnds: now + 1000)
        }
        let bySender = introductions.bySender[sender] ?? 0
        guard bySender < Membership.introductionsPerSenderMax, introductions.total < Membership.introductionsMax,
            introductions.bySender.count < Membership.introducersMax || bySender > 0
        else {
            ctx.counters.introductionsRefused += 1
            return false
        }
        introductions.bySender[sender] = bySender + 1
        introductions.total += 1
        return true
    }

    /// Where the pull on stream `sid` went, while it is in flight.
    func syncPeer(_ sid: UInt64) -> SocketAddress? { pendingSyncs[sid]?.peer }

    /// A stream this node opened ended without a usable reply: true when it was a pull (now failed).
    mutating func syncEnded(_ sid: UInt64, ctx: inout NodeContext) -> Bool {
        guard pendingSyncs.removeValue(forKey: sid) != nil else { return false }
        ctx.counters.syncsFailed += 1
        return true
    }

    /// Merges sync records. Only news about the sync partner itself, or refutations about ourselves, is
    /// re-gossiped: everything else the partner already spreads, and re-gossiping a whole table would flood the
    /// queue. Returns how many records changed this node's view.
    @discardableResult
    mutating func merge(_ items: [GossipItem], from sender: NodeID, now: UInt64, ctx: inout NodeContext) -> Int {
        var changed = 0
        for item in items {
            guard case .member(let u) = item else { continue }
            ctx.counters.syncRecordsReceived += 1
            guard apply(u, now: now, ctx: &ctx) else { continue }
            ctx.counters.syncRecordsApplied += 1
            changed += 1
            if u.id == sender { enqueueNews(item, now: now, timers: &ctx.timers) }
        }
        return changed
    }

    /// Remembers the last peer whose view differs from ours (and forgets it once it agrees). When our own news
    /// has all gone out, the next round comes early: a round with nothing queued sends nothing but may sync.
    mutating func noteDigest(_ theirs: UInt64, from sender: NodeID, now: UInt64, ctx: inout NodeContext) {
        if theirs == digest {
            agreedPulls = 0
            if mismatchPeer == sender { mismatchPeer = nil }
            // Rumour mongering with feedback: once several peers in a row hold exactly our view, the news we
            // are still retransmitting has spread; the few nodes it missed will see a differing digest and pull.
            if sender != lastMatchingPeer {
                lastMatchingPeer = sender
                matchingPeers += 1
                if matchingPeers >= Membership.matchesBeforeQuiet && !queue.isEmpty { queue.dropSpreadMemberNews() }
            }
            return
        }
        matchingPeers = 0
        lastMatchingPeer = nil
        mismatchPeer = sender
        if theirs == lastForeignDigest && sender != lastForeignPeer && agreedPulls < Membership.agreedPullsMax {
            // Two peers hold the same view and it is not ours: the fleet has settled on something we lack (the
            // tail of a wave of changes whose gossip missed us). Pull now instead of after the backoff, which
            // grew while the wave was on. While views are still changing peers rarely agree, so this does not
            // bring back a pull per round during the wave; `agreedPullsMax` bounds it for a node that cannot
            // take what the others hold.
            agreedPulls += 1
            lastForeignPeer = nil
            syncBackoff = 0
            nextSyncAllowed = min(nextSyncAllowed, now)
        } else {
            lastForeignDigest = theirs
            lastForeignPeer = sender
        }
        if queue.isEmpty && pendingSyncs.isEmpty && now >= nextSyncAllowed {
            ctx.timers.bringForward(.gossip, to: now + config.gossipInterval / 4)
        }
    }
}
