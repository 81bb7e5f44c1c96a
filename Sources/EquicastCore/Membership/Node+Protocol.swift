/// Inputs: datagrams, stream frames, timers and commands.
extension Node {
    public func handleDatagram(_ bytes: [UInt8], from: SocketAddress, now: UInt64) {
        counters.packetsIn += 1
        counters.bytesIn += UInt64(bytes.count)
        guard let frame = openFrame(bytes, transport: .datagram, from: from) else { return }
        if frame.header.messageClass == .data {
            heard(frame.header.sender, now: now)
            handleTransferFrame(frame, stream: nil, from: from, now: now)
            return
        }
        guard let (sender, message) = decodeMessage(frame, transport: .datagram, from: from) else { return }
        heard(sender, now: now)
        if isLeaving && message.type != .ack { return }
        for item in message.items { absorb(item, from: sender, now: now) }
        // After the items: a packet carrying the news that makes two views equal is not a mismatch.
        noteDigest(message.digest, from: sender, now: now)
        switch message.type {
        case .ping:
            // A ping for another id (a restarted process reusing the address) gets no ack.
            guard message.target == id else { return }
            send(Message(type: .ack, digest: digest, probeID: message.probeID), to: sender, address: from)
        case .ack:
            if let probe = probes.removeValue(forKey: message.probeID) {
                heard(probe.target, now: now)
            } else if let f = forwarded.removeValue(forKey: message.probeID) {
                send(Message(type: .ack, digest: digest, probeID: f.requesterProbeID), to: nil, address: f.requester)
            }
        case .pingRequest:
            guard let target = message.targetAddress else { return }
            let probeID = takeProbeID()
            forwarded[probeID] = ForwardedProbe(
                requester: from, requesterProbeID: message.probeID, deadline: now + config.probeTimeout * 2)
            counters.indirectProbesSent += 1
            send(
                Message(type: .ping, digest: digest, probeID: probeID, target: message.target), to: message.target,
                address: target)
        case .gossip, .syncRequest, .syncResponse:
            break
        }
    }

    public func handleStreamFrame(_ bytes: [UInt8], stream: StreamOrigin, now: UInt64) {
        counters.packetsIn += 1
        counters.bytesIn += UInt64(bytes.count)
        let from: SocketAddress
        switch stream {
        case .outgoing(let sid): from = pendingSyncs[sid]?.peer ?? transferPeerAddress(sid) ?? address
        case .accepted: from = address
        }
        guard let frame = openFrame(bytes, transport: .stream, from: from) else {
            if case .outgoing(let sid) = stream { streamEnded(sid, now: now) }
            return
        }
        if frame.header.messageClass == .data {
            heard(frame.header.sender, now: now)
            handleTransferFrame(frame, stream: stream, from: from, now: now)
            return
        }
        guard let (sender, message) = decodeMessage(frame, transport: .stream, from: from) else {
            if case .outgoing(let sid) = stream { streamEnded(sid, now: now) }
            return
        }
        heard(sender, now: now)
        switch (message.type, stream) {
        case (.syncRequest, .accepted(let connection)):
            merge(message.items, from: sender, now: now)
            counters.syncsServed += 1
            let items: [GossipItem]
            if message.bucketDigests.isEmpty {
                items = introduction(for: sender)
            } else {
                // The requester pulls what differs; if we lack something it has, we will pull it in turn.
                noteDigest(message.digest, from: sender, now: now)
                items = differingBuckets(
                    message.bucketDigests, counts: message.bucketCounts, fingerprints: message.memberFingerprints)
            }
            let reply = Message(type: .syncResponse, digest: digest, items: items)
            let frame = seal(reply, on: .stream, to: sender, messageClass: .control)
            transmits.append(.streamReply(connection: connection, bytes: frame))
        case (.syncResponse, .outgoing(let sid)):
            guard pendingSyncs.removeValue(forKey: sid) != nil else { return }
            let joining = present.isEmpty
            let presentBefore = present.count
            let changed = merge(message.items, from: sender, now: now)
            counters.syncsCompleted += 1
            pullWithFingerprints = joining || present.count >= presentBefore + Node.fingerprintPullGain
            if changed > 0 && !joining {
                // A pull that changed our view may go on at once: a node far behind (after a mass join, a wave of
                // failures or a long partition) catches up at network speed. A reply carries only buckets that
                // differ, so this stops costing much as the views come together, and the first pull that
                // changes nothing backs off.
                syncBackoff = 0
                nextSyncAllowed = now + config.gossipInterval / 2
            }
            if joining && !present.isEmpty {
                // A joiner announces itself to the members it was introduced to (with many nodes joining through
                // one seed, the seed alone could not spread every arrival in time), then pulls the rest of the
                // view from one of them, chosen at random so that a thousand joiners do not all pull from the
                // same node.
                enqueueNews(.member(selfUpdate), now: now)
                mismatchPeer = present[rng.below(present.count)]
                nextSyncAllowed = now + config.gossipInterval / 2
            }
        default:
            counters.decodeErrors += 1
        }
    }

    /// The driver could not connect, send or read for a stream this node opened.
    public func handleStreamFailed(id sid: UInt64, now: UInt64) {
        streamEnded(sid, now: now)
    }

    /// A stream this node opened ended without a usable reply.
    func streamEnded(_ sid: UInt64, now: UInt64) {
        if pendingSyncs.removeValue(forKey: sid) != nil {
            counters.syncsFailed += 1
        } else {
            transferStreamFailed(sid, now: now)
        }
    }

    public func handleTimeout(now: UInt64) {
        // Probes: direct timeout -> indirect; indirect timeout -> suspect.
        var dueProbes: [UInt64] = []
        for (pid, p) in probes where now >= p.deadline { dueProbes.append(UInt64(pid)) }
        dueProbes.sort()
        for pid in dueProbes { probeTimedOut(UInt32(truncatingIfNeeded: pid), now: now) }
        var dueForwards: [UInt32] = []
        for (pid, f) in forwarded where now >= f.deadline { dueForwards.append(pid) }
        for pid in dueForwards { forwarded[pid] = nil }
        expireSuspicions(now: now)
        var staleSyncs: [UInt64] = []
        for (sid, s) in pendingSyncs where now >= s.startedAt + config.syncInterval * 2 { staleSyncs.append(sid) }
        for sid in staleSyncs {
            pendingSyncs[sid] = nil
            counters.syncsFailed += 1
        }
        if now >= nextProbe {
            nextProbe = now + config.probeInterval
            if !isLeaving { startPeriodicProbe(now: now) }
        }
        if now >= nextGossip {
            nextGossip = now + config.gossipInterval
            gossipRound(now: now)
        }
        releaseTick(now: now)
        if now >= nextReconnect {
            nextReconnect = now + config.reconnectInterval
            reconnect(now: now)
        }
        if now >= nextReclaim {
            nextReclaim = now + 10_000
            reclaim(now: now)
        }
    }

    public func handleCommand(_ command: NodeCommand, now: UInt64) {
        switch command {
        case .leave:
            guard !isLeaving else { return }
            isLeaving = true
            probes.removeAll()
            table[id]!.state = .left
            queue.enqueue(.member(selfUpdate))
            // Enough rounds for the announcement to reach its retransmit limit through every target.
            leaveRoundsLeft = 3
            nextGossip = now
        case .broadcast(let payload):
            let event = GossipEvent(
                origin: id, id: nextEventID, payload: Array(payload.prefix(GossipEvent.payloadByteCountMax)))
            nextEventID += 1
            seenEvents[id] = event.id
            enqueueNews(.event(event), now: now)
        case .join(let addresses):
            seeds = addresses.filter { $0 != address }
            startJoin(now: now)
        }
    }

    // MARK: receiving

    func openFrame(_ bytes: [UInt8], transport: FrameTransport, from: SocketAddress) -> OpenedFrame? {
        do throws(WireError) {
            return try opener.open(bytes, transport: transport)
        } catch {
            switch error {
            case .unknownKeyID, .authenticationFailed, .encryptionRequired: counters.authenticationFailures += 1
            case .replayed, .staleSequence: counters.replaysRejected += 1
            default: counters.decodeErrors += 1
            }
            events.append(.refused(error, from: from))
            return nil
        }
    }

    func decodeMessage(_ frame: OpenedFrame, transport: FrameTransport, from: SocketAddress) -> (NodeID, Message)? {
        let itemsMax = transport == .datagram ? Message.datagramItemsMax : config.membersMax + 1
        do throws(WireError) {
            let message = try Message.decode(frame.payload, itemsMax: itemsMax)
            if transport == .datagram && (message.type == .syncRequest || message.type == .syncResponse) {
                throw .unknownMessageType(message.type.rawValue)
            }
            return (frame.header.sender, message)
        } catch {
            counters.decodeErrors += 1
            events.append(.refused(error, from: from))
            return nil
        }
    }

    func heard(_ member: NodeID, now: UInt64) {
        if member != id { table.setLastHeard(member, now) }
    }

    func absorb(_ item: GossipItem, from sender: NodeID, now: UInt64) {
        switch item {
        case .member(let u):
            counters.gossipRecordsReceived += 1
            if apply(u, now: now) {
                counters.gossipRecordsApplied += 1
                enqueueNews(item, now: now)
            }
        case .event(let e):
            if let seen = seenEvents[e.origin], seen >= e.id { return }
            seenEvents[e.origin] = e.id
            counters.eventsDelivered += 1
            events.append(.eventReceived(e))
            enqueueNews(item, now: now)
        case .release(let a):
            heardAdvert(a, from: sender, now: now)
        case .status(let st):
            heardStatus(st, from: sender, now: now)
        }
    }

    /// Merges sync records. Only news about the sync partner itself, or refutations about ourselves, is re-gossiped:
    /// everything else the partner already spreads, and re-gossiping a whole table would flood the queue.
    /// Returns how many records changed this node's view.
    @discardableResult
    func merge(_ items: [GossipItem], from sender: NodeID, now: UInt64) -> Int {
        var changed = 0
        for item in items {
            guard case .member(let u) = item else { continue }
            counters.syncRecordsReceived += 1
            guard apply(u, now: now) else { continue }
            counters.syncRecordsApplied += 1
            changed += 1
            if u.id == sender { enqueueNews(item, now: now) }
        }
        return changed
    }

    /// Remembers the last peer whose view differs from ours (and forgets it once it agrees). When our own news
    /// has all gone out, the next round comes early: a round with nothing queued sends nothing but may sync.
    func noteDigest(_ theirs: UInt64, from sender: NodeID, now: UInt64) {
        if theirs == digest {
            agreedPulls = 0
            if mismatchPeer == sender { mismatchPeer = nil }
            // Rumour mongering with feedback: once several peers in a row hold exactly our view, the news we
            // are still retransmitting has spread; the few nodes it missed will see a differing digest and pull.
            if sender != lastMatchingPeer {
                lastMatchingPeer = sender
                matchingPeers += 1
                if matchingPeers >= Node.matchesBeforeQuiet && !queue.isEmpty { queue.dropSpreadMemberNews() }
            }
            return
        }
        matchingPeers = 0
        lastMatchingPeer = nil
        mismatchPeer = sender
        if theirs == lastForeignDigest && sender != lastForeignPeer && agreedPulls < Node.agreedPullsMax {
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
            nextGossip = min(nextGossip, now + config.gossipInterval / 4)
        }
    }

    /// A reply to a joining node: ourselves, the members nearest the joiner on the id ring (its future ring
    /// neighbours, who will probe it), and a few random members for far-reaching gossip; `introductionSize` in
    /// all. Bounded, so that a thousand nodes joining through one seed cost the seed little: the joiner then
    /// announces itself to these and pulls the rest of the view from the fleet, not from the seed.
    func introduction(for joiner: NodeID) -> [GossipItem] {
        func distance(_ m: NodeID) -> UInt64 { min(m.rawValue &- joiner.rawValue, joiner.rawValue &- m.rawValue) }
        func closer(_ a: NodeID, _ b: NodeID) -> Bool {
            distance(a) < distance(b) || (distance(a) == distance(b) && a < b)
        }
        // The nearest `nearCount`, in order, by insertion in one pass over the table (a sort with this comparison
        // would be one more sort in device code; see `sortedIDs`).
        let nearCount = Node.introductionSize * 3 / 4
        var nearest: [NodeID] = []
        for s in 0..<table.slotLimit where table.presentIncarnation(at: s) != nil {
            let m = table.id(at: s)
            guard m != id, m != joiner else { continue }
            var at = nearest.count
            while at > 0 && closer(m, nearest[at - 1]) { at -= 1 }
            guard at < nearCount else { continue }
            nearest.insert(m, at: at)
            if nearest.count > nearCount { nearest.removeLast() }
        }
        var chosen = nearest.compactMap { table[$0] }
        var attempts = 0
        let others = present.count - (table.presentPosition(joiner) == nil ? 0 : 1)
        while chosen.count < Node.introductionSize && chosen.count < others && attempts < 4 * Node.introductionSize {
            attempts += 1
            guard let m = table[present[rng.below(present.count)]], m.id != joiner,
                !chosen.contains(where: { $0.id == m.id })
            else { continue }
            chosen.append(m)
        }
        var items: [GossipItem] = [.member(selfUpdate)]
        for m in chosen { items.append(.member(syncRecord(m))) }
        return items
    }

    /// A reply to a member's pull: ourselves, then our latest departures (failed or left members) in buckets
    /// whose digest differs from the requester's, then the other records of each differing bucket, within
    /// `syncReplyByteBudget`. In a wave of failures the latest departures are what the requester most likely
    /// lacks, and they are a few records in each of thousands of buckets: whole buckets from a random start would
    /// carry a fraction of them. Buckets where we hold more members than the requester come next, most first (the
    /// requester surely learns from them: a wave of joins); the rest follow from a random starting bucket, so that
    /// replies cut short by the budget cover different ranges each time.
    ///
    /// Of a differing bucket goes every departed member and every present one whose fingerprint the requester
    /// did not list (`fingerprints`, range by range as its counts say): what it lacks, not the whole bucket. If
    /// that leaves nothing, the requester holds members we lack (we will pull them in turn) when its count
    /// exceeds the members it lists that we hold; otherwise the difference is one fingerprints cannot show (two
    /// members sharing 16 bits) and the whole bucket goes. Without fingerprints, whole buckets go.
    func differingBuckets(_ theirs: [UInt64], counts theirCounts: [UInt16], fingerprints: [UInt16] = [])
        -> [GossipItem]
    {
        let n = theirs.count
        let ours = bucketSummary(n)
        // Buckets where we are ahead, most gain first, then lower bucket: gain (< 65,536, counts are UInt16)
        // inverted in the high bits, the bucket in the low 16.
        var ahead: [UInt64] = []
        var other: [Int] = []
        let start = rng.below(n)
        for k in 0..<n {
            let b = (start + k) % n
            guard theirs[b] != ours.digests[b] else { continue }
            let gain = Int(ours.counts[b]) - Int(theirCounts[b])
            if gain > 0 { ahead.append((0xffff - UInt64(gain)) << 16 | UInt64(b)) } else { other.append(b) }
        }
        ahead.sort()
        var items: [GossipItem] = [.member(selfUpdate)]
        var used = Message(type: .syncResponse, digest: 0).headerByteCount + items[0].encodedByteCount
        let budget = min(config.syncReplyByteBudget, FrameLimits.streamPayloadBudget)
        let shift = UInt64(64 - n.trailingZeroBitCount)
        // Slots already in the reply, one bit each.
        var sent = [UInt64](repeating: 0, count: (table.slotLimit + 63) / 64)
        for s in table.recentDepartures {
            let word = Int(s) / 64
            let bit = UInt64(1) << UInt64(s % 64)
            // Those still departed, read from the row before a record is built.
            guard sent[word] & bit == 0, table.isKnown(slot: Int(s)), table.presentIncarnation(at: Int(s)) == nil
            else { continue }
            let b = Int(table.id(at: Int(s)).rawValue >> shift)
            guard theirs[b] != ours.digests[b] else { continue }
            let item = GossipItem.member(syncRecord(table.member(at: Int(s))))
            if used + item.encodedByteCount > budget || items.count > config.membersMax { return items }
            items.append(item)
            used += item.encodedByteCount
            sent[word] |= bit
        }
        // Where each bucket's fingerprints start (the last entry where they end), when the requester sent them.
        var listed: [Int] = []
        if !fingerprints.isEmpty {
            listed.reserveCapacity(n + 1)
            var total = 0
            for c in theirCounts {
                listed.append(total)
                total += Int(c)
            }
            listed.append(total)
        }
        func isListed(_ member: NodeID, _ incarnation: UInt64, suspect: Bool, bucket b: Int) -> Bool {
            let f = Node.fingerprint(member, incarnation, suspect: suspect)
            for i in listed[b]..<listed[b + 1] where fingerprints[i] == f { return true }
            return false
        }
        // Each differing bucket's place in the reply.
        let order = ahead.map { Int($0 & 0xffff) } + other
        var rank = [Int32](repeating: -1, count: n)
        for (r, b) in order.enumerated() { rank[b] = Int32(r) }
        // One pass over the rows in slot order (which reads memory in order, where walking bucket by bucket would
        // jump about the table): the members of differing buckets, each with its bucket's rank and whether the
        // requester listed it, then sorted by rank (a counting sort: ranks are fewer than members).
        let listedBit = UInt64(1) << 32
        var found: [UInt64] = []
        var perRank = [Int](repeating: 0, count: order.count + 1)
        // The bucket is told by the id, read before the row: a simulator's nodes share one array of ids, which
        // stays in cache, while each node's rows do not; rows of buckets that do not differ are never read.
        for s in 0..<table.slotLimit {
            let member = table.id(at: s)
            let b = Int(member.rawValue >> shift)
            guard rank[b] >= 0, table.isKnown(slot: s), sent[s / 64] & (UInt64(1) << UInt64(s % 64)) == 0,
                member != id
            else { continue }
            var entry = UInt64(rank[b]) << 33 | UInt64(s)
            if !listed.isEmpty, let incarnation = table.presentIncarnation(at: s),
                isListed(member, incarnation, suspect: table.isSuspect(at: s), bucket: b)
            {
                entry |= listedBit
            }
            found.append(entry)
            perRank[Int(rank[b]) + 1] += 1
        }
        for r in 0..<order.count { perRank[r + 1] += perRank[r] }
        var byRank = [UInt64](repeating: 0, count: found.count)
        var next = perRank
        for e in found {
            let r = Int(e >> 33)
            byRank[next[r]] = e
            next[r] += 1
        }
        for (r, b) in order.enumerated() {
            var bucket: [Int] = []
            // Present members the requester listed.
            var held: [Int] = []
            for e in byRank[perRank[r]..<perRank[r + 1]] {
                let s = Int(truncatingIfNeeded: e & 0xffff_ffff)
                if e & listedBit != 0 { held.append(s) } else { bucket.append(s) }
            }
            if bucket.isEmpty && !listed.isEmpty {
                let selfListed = Int(id.rawValue >> shift) == b && isListed(id, incarnation, suspect: false, bucket: b)
                if Int(theirCounts[b]) > held.count + (selfListed ? 1 : 0) { continue }
                bucket = held
            }
            var records: [GossipItem] = []
            records.reserveCapacity(bucket.count)
            var size = 0
            for s in bucket {
                let item = GossipItem.member(syncRecord(table.member(at: s)))
                records.append(item)
                size += item.encodedByteCount
            }
            if used + size > budget || items.count + records.count > config.membersMax + 1 { break }
            items += records
            used += size
        }
        return items
    }

    func syncRecord(_ m: Member) -> MemberUpdate {
        MemberUpdate(state: m.state, id: m.id, incarnation: m.incarnation, address: m.address, reporter: id)
    }
}
