import EquicastCrypto

/// Releases and statuses in gossip: announcements heard, statuses heard, and this node's advertisements.
extension Dissemination {
    mutating func heardAdvert(
        _ a: ReleaseAdvert, from sender: NodeID, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        if let t = transfer, t.id == a.releaseID {
            trickle.hearConsistent()
            return
        }
        guard a.productTag == productTag, !settings.trustedKeys.isEmpty else { return }
        if rejectedReleases.contains(a.releaseID) || avoidedSources.contains(sender) { return }
        if let t = transfer, t.installable, t.version >= a.version {
            // The sender spreads an older release: it is behind. Tell it at once, and advertise sooner.
            trickle.hearInconsistent(now: now, rng: &ctx.rng)
            if let m = members.member(sender) {
                advertise(to: sender, address: m.address, members: &members, ctx: &ctx)
            }
            return
        }
        if a.version <= installedVersion && (updateState == .committed || updateState == .idle) {
            // What we run already (or older): only a release that allows downgrades could want it, and those
            // are pushed, not pulled.
            return
        }
        if let f = manifestFetch, f.advert.version >= a.version { return }
        guard let m = members.member(sender), m.state.isPresent else { return }
        let sid = ctx.takeStreamID()
        manifestFetch = ManifestFetch(advert: a, stream: sid, startedAt: now, peer: sender, address: m.address)
        if updateState == .idle || updateState.isFinal { updateState = .announced }
        let request = TransferMessage(type: .manifestRequest, releaseID: a.releaseID)
        ctx.transmits.append(.streamOpen(id: sid, to: m.address, bytes: ctx.seal(request, on: .stream, to: sender)))
    }

    mutating func heardStatus(
        _ st: NodeStatus, from sender: NodeID, now: UInt64, members: inout Membership, ctx: inout NodeContext
    ) {
        if st.node == id {
            // A status of ours from an earlier life (state lost): outrank it. An echo of the current one is not.
            if st.sequence > statusSequence,
                ctx.identity.scheme.isValid(st.signature, of: Statement.status(st), by: ctx.identity.publicKey)
            {
                statusSequence = st.sequence
                publishStatus(now: now, members: &members, ctx: &ctx)
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
            trickle.hearInconsistent(now: now, rng: &ctx.rng)
            if let m = members.member(sender) {
                advertise(to: sender, address: m.address, members: &members, ctx: &ctx)
            }
        }
        let old = members.status(of: st.node)
        if let old, old.sequence >= st.sequence { return }
        guard old != nil || members.statusCount < members.config.membersMax else { return }
        // Only the node itself can say what it runs: signed with the key its id stands for (a member's key
        // is known once one of its records has been checked; a status that comes first waits for the next).
        guard let key = members.table.key(st.node),
            ctx.identity.scheme.isValid(st.signature, of: Statement.status(st), by: key)
        else {
            ctx.counters.signaturesRefused += 1
            return
        }
        members.setStatus(st)
        members.enqueueNews(.status(st), now: now, timers: &ctx.timers)
    }

    /// One advertisement: the release we hold (if any) and our status.
    @inline(never)
    mutating func advertise(
        to member: NodeID, address: SocketAddress, members: inout Membership, ctx: inout NodeContext
    ) {
        var items: [GossipItem] = []
        if let t = transfer, !t.withheld { items.append(.release(t.advert)) }
        if let st = signedStatus { items.append(.status(st)) }
        ctx.counters.advertisementsSent += 1
        members.send(
            Message(type: .gossip, digest: members.digest, items: items), to: member, address: address, ctx: &ctx)
    }

    /// Tells the ring neighbours and this round's fanout of the release just accepted, at once rather than with
    /// the next gossip round: each of them fetches the manifest and does the same, so the announcement crosses
    /// the fleet in about log(N) manifest fetches (milliseconds each) instead of log(N) gossip intervals, and no
    /// node starts its download a few hundred milliseconds after the others. A few datagrams per node and release.
    mutating func announceNow(skipping source: NodeID?, members: inout Membership, ctx: inout NodeContext) {
        for m in releaseNeighbourhood(&members) where m != source && m != id {
            if let member = members.member(m), member.state.isPresent {
                advertise(to: m, address: member.address, members: &members, ctx: &ctx)
            }
        }
    }

    /// The members a node first tells of a release and asks what they hold: its ring neighbours and this round's
    /// fanout.
    func releaseNeighbourhood(_ members: inout Membership) -> [NodeID] {
        var targets: [NodeID] = members.ringNeighbours
        for m in members.fanoutPeers(round: members.round &+ 1) where !targets.contains(m) { targets.append(m) }
        return targets
    }
}
