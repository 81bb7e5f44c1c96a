/// Periodic work: probing, gossip rounds, joins and digest-driven syncs.
extension Membership {
    /// Runs the membership timers before the release work: probe timeouts (direct -> indirect -> suspect),
    /// forwarded probes, suspicions, pulls given up, the periodic probe and the gossip round.
    mutating func handleTimersBeforeRelease(now: UInt64, ctx: inout NodeContext) {
        rearmTimers(&ctx.timers)
        if ctx.timers.isDue(.probeTimeout, at: now) {
            var dueProbes: [UInt64] = []
            for (pid, p) in probes where now >= p.deadline { dueProbes.append(UInt64(pid)) }
            dueProbes.sort()
            for pid in dueProbes { probeTimedOut(UInt32(truncatingIfNeeded: pid), now: now, ctx: &ctx) }
        }
        if ctx.timers.isDue(.forwardTimeout, at: now) {
            var dueForwards: [UInt32] = []
            for (pid, f) in forwarded where now >= f.deadline { dueForwards.append(pid) }
            for pid in dueForwards { forwarded[pid] = nil }
        }
        // Not gated by the table: a probe that timed out just now may have confirmed a suspicion, bringing its
        // end forward (`expireSuspicions` reads the deadline it caches).
        expireSuspicions(now: now, ctx: &ctx)
        if ctx.timers.isDue(.syncTimeout, at: now) {
            var staleSyncs: [UInt64] = []
            for (sid, s) in pendingSyncs where now >= s.startedAt + config.syncInterval * 2 { staleSyncs.append(sid) }
            for sid in staleSyncs {
                pendingSyncs[sid] = nil
                ctx.counters.syncsFailed += 1
            }
        }
        if ctx.timers.isDue(.probe, at: now) {
            ctx.timers[.probe] = now + config.probeInterval
            if !isLeaving { startPeriodicProbe(now: now, ctx: &ctx) }
        }
        if ctx.timers.isDue(.gossip, at: now) {
            ctx.timers[.gossip] = now + config.gossipInterval
            gossipRound(now: now, ctx: &ctx)
        }
    }

    /// Runs the membership timers after the release work: reconnecting to failed members and reclaiming.
    /// Returns the members forgotten.
    mutating func handleTimersAfterRelease(now: UInt64, ctx: inout NodeContext) -> [NodeID] {
        if ctx.timers.isDue(.reconnect, at: now) {
            ctx.timers[.reconnect] = now + config.reconnectInterval
            reconnect(now: now, ctx: &ctx)
        }
        guard ctx.timers.isDue(.reclaim, at: now) else { return [] }
        ctx.timers[.reclaim] = now + Membership.reclaimInterval
        return reclaim(now: now)
    }

    mutating func takeProbeID() -> UInt32 {
        nextProbeID &+= 1
        if nextProbeID == 0 { nextProbeID = 1 }
        return nextProbeID
    }

    /// One probe per period. Targets cycle through the watched ring neighbours (suspects passed over for the
    /// members beyond) with a rendezvous pick between them, so each member is probed by each of its ring
    /// neighbours every few periods and by random members in between. A member that has just become watched is
    /// probed first: when a neighbour is suspected, the member beyond it may have crashed too (a crash of many at
    /// once), and until now it may have been watched by nobody.
    mutating func startPeriodicProbe(now: UInt64, ctx: inout NodeContext) {
        guard !present.isEmpty else { return }
        probePeriod &+= 1
        let neighbours = watchedNeighbours()
        ringProbed.removeAll { !neighbours.contains($0) }
        let slot = Int(probePeriod % UInt64(neighbours.count + 1))
        var target: NodeID
        if let fresh = neighbours.first(where: { !ringProbed.contains($0) }) {
            target = fresh
            ringProbed.append(fresh)
        } else if slot < neighbours.count {
            target = neighbours[slot]
        } else {
            let picks = PeerSelection.rendezvousTargets(
                selfID: id, round: probePeriod, viewDigest: digest, memberCount: present.count, count: 1,
                excluding: nil)
            target = present[picks[0]]
        }
        if probes.values.contains(where: { $0.target == target }) { return }
        probe(target, now: now, ctx: &ctx)
    }

    /// `bare`: the ping carries no gossip (a ring candidate's probe: the candidates are the ring neighbours'
    /// neighbours, and news spent on them would not go far).
    mutating func probe(_ target: NodeID, bare: Bool = false, now: UInt64, ctx: inout NodeContext) {
        guard let m = table[target] else { return }
        let pid = takeProbeID()
        probes[pid] = Probe(target: target, indirect: false, deadline: now + config.probeTimeout)
        ctx.counters.probesSent += 1
        send(
            Message(type: .ping, digest: digest, probeID: pid, target: target), to: target, address: m.address,
            bare: bare, ctx: &ctx)
    }

    /// Probes the nearest present members that would be ring neighbours but have not answered a probe from this
    /// node yet (at most a ring's worth, none twice at once), at each gossip round: a real member answers and
    /// takes its place in the ring within a round trip; one that does not is suspected like any other and,
    /// unless it refutes, fails, and the members beyond it are tried.
    mutating func probeRingCandidates(now: UInt64, ctx: inout NodeContext) {
        if candidates.needsRescan { candidates.rescan(present) }
        // Suspects are passed over for the members beyond them: they are being probed already.
        let nearest = candidates.watched { table.stateAndIncarnation($0)?.state == .suspect }
        for c in nearest where !table.hasAnswered(c) && !probes.values.contains(where: { $0.target == c }) {
            probe(c, bare: true, now: now, ctx: &ctx)
        }
    }

    /// A member that watches `member` (it would be among the watched neighbours if it were not suspect) checks a
    /// suspicion raised by someone else; if it cannot reach the member either, its own suspicion counts as an
    /// independent confirmation and shortens the timeout everywhere.
    mutating func verifySuspicion(of member: NodeID, now: UInt64, ctx: inout NodeContext) {
        guard !isLeaving, watchedNeighbours(except: member).contains(member) else { return }
        if probes.values.contains(where: { $0.target == member }) { return }
        probe(member, now: now, ctx: &ctx)
    }

    mutating func probeTimedOut(_ pid: UInt32, now: UInt64, ctx: inout NodeContext) {
        guard var p = probes[pid], let m = table[p.target], m.state.isPresent else {
            probes[pid] = nil
            return
        }
        if !p.indirect && config.indirectChecks > 0 && present.count > 1 {
            p.indirect = true
            p.deadline = now + config.probeTimeout
            probes[pid] = p
            let helpers = PeerSelection.rendezvousTargets(
                selfID: id, round: UInt64(pid), viewDigest: digest, memberCount: present.count,
                count: config.indirectChecks + 1, excluding: nil
            ).map { present[$0] }.filter { $0 != p.target }.prefix(config.indirectChecks)
            for helper in helpers {
                guard let h = table[helper] else { continue }
                ctx.counters.indirectProbesSent += 1
                send(
                    Message(
                        type: .pingRequest, digest: digest, probeID: pid, target: p.target, targetAddress: m.address),
                    to: helper, address: h.address, ctx: &ctx)
            }
            return
        }
        probes[pid] = nil
        ctx.counters.suspicionsRaised += 1
        let u = MemberUpdate(
            state: .suspect, id: p.target, incarnation: m.incarnation, address: m.address, reporter: id)
        if apply(u, now: now, ctx: &ctx) {
            enqueueNews(.member(u), now: now, timers: &ctx.timers)
        }
        // Our own confirmation of an existing suspicion is news too.
        else if m.state == .suspect, suspicions[p.target]?.confirm(by: u.reporter) == true {
            enqueueNews(.member(u), now: now, timers: &ctx.timers)
        }
    }

    /// Sends pending changes to the ring neighbours and `fanout` rendezvous-chosen members. Nothing pending,
    /// nothing sent: an idle fleet costs only its probes.
    mutating func gossipRound(now: UInt64, ctx: inout NodeContext) {
        round &+= 1
        if isLeaving {
            if leaveRoundsLeft > 0 { leaveRoundsLeft -= 1 }
            if queue.isEmpty { queue.enqueue(.member(selfUpdate)) }
        }
        maybeSync(now: now, ctx: &ctx)
        if !isLeaving { probeRingCandidates(now: now, ctx: &ctx) }
        guard !queue.isEmpty, !present.isEmpty else { return }
        // Rendezvous picks first: each change goes out only `retransmitLimit` times, and the far-reaching random
        // hops are what make spread O(log N); the ring neighbours, which mostly tell each other, come after.
        var targets = fanoutPeers(round: round)
        for n in ringNeighbours where !targets.contains(n) { targets.append(n) }
        for target in targets {
            guard let m = table[target], !queue.isEmpty else { break }
            send(Message(type: .gossip, digest: digest), to: target, address: m.address, ctx: &ctx)
            // A burst of news (a mass join) that one datagram per target would leave waiting goes out in more,
            // each with news not sent before.
            var extra = 1
            while extra < Membership.gossipDatagramsPerTargetMax && queue.unsentCount > 0 {
                extra += 1
                send(
                    Message(type: .gossip, digest: digest), to: target, address: m.address, unsentOnly: true,
                    ctx: &ctx)
            }
        }
    }

    /// At start: a node with seeds joins through one of them.
    mutating func startJoin(now: UInt64, ctx: inout NodeContext) {
        guard !seeds.isEmpty else { return }
        let seed = seeds[ctx.rng.below(seeds.count)]
        startSync(with: seed, now: now, ctx: &ctx)
        nextSyncAllowed = now + config.syncInterval
    }

    mutating func startSync(with peer: SocketAddress, now: UInt64, ctx: inout NodeContext) {
        let sid = ctx.takeStreamID()
        pendingSyncs[sid] = PendingSync(peer: peer, startedAt: now)
        ctx.counters.syncsStarted += 1
        // A node that knows nobody asks to be introduced; a member sends its bucket digests and pulls what differs.
        let buckets = Membership.pullBuckets(present: present.count)
        let summary = buckets == 0 ? (digests: [UInt64](), counts: [UInt16]()) : bucketSummary(buckets)
        let request = Message(
            type: .syncRequest, digest: digest, items: [.member(selfUpdate)], bucketDigests: summary.digests,
            bucketCounts: summary.counts,
            memberFingerprints: buckets == 0 || !pullWithFingerprints ? [] : memberFingerprints(counts: summary.counts))
        ctx.transmits.append(.streamOpen(id: sid, to: peer, bytes: ctx.seal(request, on: .stream, to: nil)))
    }

    /// A joining node retries its seeds until it knows someone; a member whose digest differs from a peer's
    /// pulls the differing buckets from that peer. Pulls back off from GossipInterval to one per SyncInterval,
    /// except that pulls that brought members we lacked continue at once (see `syncReplied`).
    mutating func maybeSync(now: UInt64, ctx: inout NodeContext) {
        guard now >= nextSyncAllowed, pendingSyncs.isEmpty, !isLeaving else { return }
        if present.isEmpty {
            if !seeds.isEmpty { startJoin(now: now, ctx: &ctx) }
            return
        }
        guard let peer = mismatchPeer, let m = table[peer], m.state.isPresent else { return }
        mismatchPeer = nil
        if now >= lastMismatchSync + 2 * config.syncInterval { syncBackoff = 0 }
        let wait = max(syncBackoff, config.gossipInterval)
        syncBackoff = min(wait * 2, config.syncInterval)
        lastMismatchSync = now
        nextSyncAllowed = now + wait
        startSync(with: m.address, now: now, ctx: &ctx)
    }

    /// Syncs with one random failed member. After a partition heals, each side holds the other failed and
    /// neither probes nor gossips to it; a sync across carries each side's verdict to the other, both refute,
    /// and their refutations spread. Against a node that is really gone it costs one refused connection.
    mutating func reconnect(now: UInt64, ctx: inout NodeContext) {
        guard !isLeaving, pendingSyncs.isEmpty else { return }
        let failed = table.ids(in: .failed)
        guard !failed.isEmpty else { return }
        guard let m = table[failed.sortedIDs()[ctx.rng.below(failed.count)]] else { return }
        startSync(with: m.address, now: now, ctx: &ctx)
    }
}
