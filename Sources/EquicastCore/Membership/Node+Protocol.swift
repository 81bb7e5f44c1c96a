/// Inputs: datagrams, stream frames, timers and commands.
extension Node {
    public func handleDatagram(_ bytes: [UInt8], from: SocketAddress, now: UInt64) {
        counters.packetsIn += 1
        counters.bytesIn += UInt64(bytes.count)
        guard let (sender, message) = openAndDecode(bytes, transport: .datagram, from: from) else { return }
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
        case .outgoing(let sid): from = pendingSyncs[sid]?.peer ?? address
        case .accepted: from = address
        }
        guard let (sender, message) = openAndDecode(bytes, transport: .stream, from: from) else {
            if case .outgoing(let sid) = stream, pendingSyncs.removeValue(forKey: sid) != nil {
                counters.syncsFailed += 1
            }
            return
        }
        heard(sender, now: now)
        switch (message.type, stream) {
        case (.syncRequest, .accepted(let connection)):
            merge(message.items, from: sender, now: now)
            counters.syncsServed += 1
            let reply = Message(type: .syncResponse, digest: digest, items: fullState())
            transmits.append(.streamReply(connection: connection, bytes: seal(reply, messageClass: .control)))
        case (.syncResponse, .outgoing(let sid)):
            guard pendingSyncs.removeValue(forKey: sid) != nil else { return }
            let joining = present.isEmpty
            merge(message.items, from: sender, now: now)
            counters.syncsCompleted += 1
            if joining && !present.isEmpty {
                // A joiner announces itself to the members it just learned: with many nodes joining through one
                // seed, the seed alone could not spread every arrival in time. Its snapshot is the view most
                // likely to miss concurrent arrivals, so the join does not use up the mismatch-sync allowance.
                enqueueNews(.member(selfUpdate), now: now)
                nextSyncAllowed = now
            }
        default:
            counters.decodeErrors += 1
        }
    }

    /// The driver could not connect, send or read for a stream this node opened.
    public func handleStreamFailed(id sid: UInt64, now: UInt64) {
        if pendingSyncs.removeValue(forKey: sid) != nil { counters.syncsFailed += 1 }
    }

    public func handleTimeout(now: UInt64) {
        // Probes: direct timeout -> indirect; indirect timeout -> suspect.
        var dueProbes: [UInt32] = []
        for (pid, p) in probes where now >= p.deadline { dueProbes.append(pid) }
        for pid in dueProbes.sorted() { probeTimedOut(pid, now: now) }
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

    func openAndDecode(_ bytes: [UInt8], transport: FrameTransport, from: SocketAddress) -> (NodeID, Message)? {
        let frame: OpenedFrame
        do throws(WireError) {
            frame = try opener.open(bytes, transport: transport)
        } catch {
            switch error {
            case .unknownKeyID, .authenticationFailed, .encryptionRequired: counters.authenticationFailures += 1
            case .replayed, .staleSequence: counters.replaysRejected += 1
            default: counters.decodeErrors += 1
            }
            events.append(.refused(error, from: from))
            return nil
        }
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
        if member != id, table[member] != nil { table[member]!.lastHeard = now }
    }

    func absorb(_ item: GossipItem, from sender: NodeID, now: UInt64) {
        switch item {
        case .member(let u):
            if apply(u, now: now) { enqueueNews(item, now: now) }
        case .event(let e):
            if let seen = seenEvents[e.origin], seen >= e.id { return }
            seenEvents[e.origin] = e.id
            counters.eventsDelivered += 1
            events.append(.eventReceived(e))
            enqueueNews(item, now: now)
        }
    }

    /// Full-state merge. Only news about the sync partner itself, or refutations about ourselves, is re-gossiped:
    /// everything else the partner already spreads, and re-gossiping a whole table would flood the queue.
    func merge(_ items: [GossipItem], from sender: NodeID, now: UInt64) {
        for item in items {
            guard case .member(let u) = item else { continue }
            if apply(u, now: now) && u.id == sender { enqueueNews(item, now: now) }
        }
    }

    /// Remembers the last peer whose view differs from ours (and forgets it once it agrees). When our own news
    /// has all gone out, the next round comes early: a round with nothing queued sends nothing but may sync.
    func noteDigest(_ theirs: UInt64, from sender: NodeID, now: UInt64) {
        if theirs == digest {
            if mismatchPeer == sender { mismatchPeer = nil }
            return
        }
        mismatchPeer = sender
        if queue.isEmpty && pendingSyncs.isEmpty && now >= nextSyncAllowed {
            nextGossip = min(nextGossip, now + config.gossipInterval / 4)
        }
    }

    /// This node's view for a sync: itself first, then the other members in ring order from its successor,
    /// as many as fit one stream frame and `membersMax` (about 11,000 IPv6 or 14,900 IPv4 members; a larger
    /// view sends its ring neighbourhood, and gossip carries the rest).
    func fullState() -> [GossipItem] {
        let budget = FrameLimits.streamPayloadBudget - Message(type: .syncResponse, digest: 0).headerByteCount
        var items: [GossipItem] = [.member(selfUpdate)]
        var used = items[0].encodedByteCount
        let others = table.values.filter { $0.id != id }.sorted {
            $0.id.rawValue &- id.rawValue < $1.id.rawValue &- id.rawValue
        }
        for m in others {
            let item = GossipItem.member(
                MemberUpdate(state: m.state, id: m.id, incarnation: m.incarnation, address: m.address, reporter: id))
            let size = item.encodedByteCount
            if items.count >= config.membersMax || used + size > budget { break }
            items.append(item)
            used += size
        }
        return items
    }
}
