/// Periodic work: probing, gossip rounds, joins and digest-driven syncs.
extension Node {
    func takeProbeID() -> UInt32 {
        nextProbeID &+= 1
        if nextProbeID == 0 { nextProbeID = 1 }
        return nextProbeID
    }

    /// One probe per period. Targets cycle through the watched ring neighbours (suspects passed over for the
    /// members beyond) with a rendezvous pick between them, so each member is probed by each of its ring
    /// neighbours every few periods and by random members in between. A member that has just become watched is
    /// probed first: when a neighbour is suspected, the member beyond it may have crashed too (a crash of many at
    /// once), and until now it may have been watched by nobody.
    func startPeriodicProbe(now: UInt64) {
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
        probe(target, now: now)
    }

    func probe(_ target: NodeID, now: UInt64) {
        guard let m = table[target] else { return }
        let pid = takeProbeID()
        probes[pid] = Probe(target: target, sentAt: now, indirect: false, deadline: now + config.probeTimeout)
        counters.probesSent += 1
        send(Message(type: .ping, digest: digest, probeID: pid, target: target), to: target, address: m.address)
    }

    /// A member that watches `member` (it would be among the watched neighbours if it were not suspect) checks a
    /// suspicion raised by someone else; if it cannot reach the member either, its own suspicion counts as an
    /// independent confirmation and shortens the timeout everywhere.
    func verifySuspicion(of member: NodeID, now: UInt64) {
        guard !isLeaving, watchedNeighbours(except: member).contains(member) else { return }
        if probes.values.contains(where: { $0.target == member }) { return }
        probe(member, now: now)
    }

    func probeTimedOut(_ pid: UInt32, now: UInt64) {
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
                counters.indirectProbesSent += 1
                send(
                    Message(
                        type: .pingRequest, digest: digest, probeID: pid, target: p.target, targetAddress: m.address),
                    to: helper, address: h.address)
            }
            return
        }
        probes[pid] = nil
        counters.suspicionsRaised += 1
        let u = MemberUpdate(
            state: .suspect, id: p.target, incarnation: m.incarnation, address: m.address, reporter: id)
        if apply(u, now: now) {
            enqueueNews(.member(u), now: now)
        }
        // Our own confirmation of an existing suspicion is news too.
        else if m.state == .suspect, suspicions[p.target]?.confirm(by: id) == true {
            enqueueNews(.member(u), now: now)
        }
    }

    /// Sends pending changes to the ring neighbours and `fanout` rendezvous-chosen members. Nothing pending,
    /// nothing sent: an idle fleet costs only its probes.
    func gossipRound(now: UInt64) {
        round &+= 1
        if isLeaving {
            if leaveRoundsLeft > 0 { leaveRoundsLeft -= 1 }
            if queue.isEmpty { queue.enqueue(.member(selfUpdate)) }
        }
        maybeSync(now: now)
        guard !queue.isEmpty, !present.isEmpty else { return }
        // Rendezvous picks first: each change goes out only `retransmitLimit` times, and the far-reaching random
        // hops are what make spread O(log N); the ring neighbours, which mostly tell each other, come after.
        var targets = PeerSelection.rendezvousTargets(
            selfID: id, round: round, viewDigest: digest, memberCount: present.count, count: config.fanout,
            excluding: nil
        ).map { present[$0] }
        for n in ringNeighbours where !targets.contains(n) { targets.append(n) }
        for target in targets {
            guard let m = table[target], !queue.isEmpty else { break }
            send(Message(type: .gossip, digest: digest), to: target, address: m.address)
        }
    }

    func startJoin(now: UInt64) {
        guard !seeds.isEmpty else { return }
        let seed = seeds[rng.below(seeds.count)]
        startSync(with: seed, now: now)
        nextSyncAllowed = now + config.syncInterval
    }

    func startSync(with peer: SocketAddress, now: UInt64) {
        let sid = nextStreamID
        nextStreamID += 1
        pendingSyncs[sid] = PendingSync(peer: peer, startedAt: now)
        counters.syncsStarted += 1
        // A node that knows nobody asks to be introduced; a member sends its bucket digests and pulls what differs.
        let buckets = Node.pullBuckets(present: present.count)
        let summary = buckets == 0 ? (digests: [UInt64](), counts: [UInt16]()) : bucketSummary(buckets)
        let request = Message(
            type: .syncRequest, digest: digest, items: [.member(selfUpdate)], bucketDigests: summary.digests,
            bucketCounts: summary.counts,
            memberFingerprints: buckets == 0 || !pullWithFingerprints ? [] : memberFingerprints(counts: summary.counts))
        transmits.append(.streamOpen(id: sid, to: peer, bytes: seal(request, on: .stream, to: nil)))
    }

    /// A joining node retries its seeds until it knows someone; a member whose digest differs from a peer's
    /// pulls the differing buckets from that peer. Pulls back off from GossipInterval to one per SyncInterval,
    /// except that pulls that brought members we lacked continue at once (see `handleStreamFrame`).
    func maybeSync(now: UInt64) {
        guard now >= nextSyncAllowed, pendingSyncs.isEmpty, !isLeaving else { return }
        if present.isEmpty {
            if !seeds.isEmpty { startJoin(now: now) }
            return
        }
        guard let peer = mismatchPeer, let m = table[peer], m.state.isPresent else { return }
        mismatchPeer = nil
        if now >= lastMismatchSync + 2 * config.syncInterval { syncBackoff = 0 }
        let wait = max(syncBackoff, config.gossipInterval)
        syncBackoff = min(wait * 2, config.syncInterval)
        lastMismatchSync = now
        nextSyncAllowed = now + wait
        startSync(with: m.address, now: now)
    }

    /// Syncs with one random failed member. After a partition heals, each side holds the other failed and
    /// neither probes nor gossips to it; a sync across carries each side's verdict to the other, both refute,
    /// and their refutations spread. Against a node that is really gone it costs one refused connection.
    func reconnect(now: UInt64) {
        guard !isLeaving, pendingSyncs.isEmpty else { return }
        let failed = table.ids(in: .failed)
        guard !failed.isEmpty else { return }
        guard let m = table[failed.sortedIDs()[rng.below(failed.count)]] else { return }
        startSync(with: m.address, now: now)
    }
}
