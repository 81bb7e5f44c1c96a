/// SWIM's rules for merging what a node hears into its member table, and the checks of what members sign.
extension Membership {
    /// Applies one change. Returns true when it changed this node's view (and so is news worth gossiping).
    ///
    /// What a member says about itself is checked before it is applied: a new member, a higher incarnation,
    /// `alive` and `left` need the member's signature (`MemberUpdate.proof`). A `suspect` or `failed` claim by
    /// another node needs none but may only name an incarnation already proven, so no claim can outrank the
    /// member's own next word.
    @discardableResult
    mutating func apply(_ u: MemberUpdate, now: UInt64, ctx: inout NodeContext) -> Bool {
        if u.id == id { return applyAboutSelf(u, now: now, ctx: &ctx) }
        // Stale news (the common case) is refused before the member's row is read in full, or a signature
        // checked; the rules below say the same.
        let known = table.stateAndIncarnation(u.id)
        if let known {
            if u.state == .alive
                ? u.incarnation <= known.incarnation
                : !known.state.isPresent || u.incarnation < known.incarnation
            {
                return false
            }
        }
        let proven = known == nil || u.incarnation > known!.incarnation || u.state == .alive || u.state == .left
        if proven && !isSigned(u, ctx: &ctx) { return false }
        guard known != nil, var m = table[u.id] else {
            // Unknown member: only a live announcement adds it; news of the death of a stranger is not kept.
            guard u.state.isPresent, table.count < config.membersMax else { return false }
            table.add(
                Member(
                    id: u.id, address: u.address, state: .alive, incarnation: u.incarnation, stateChangedAt: now,
                    lastHeard: 0), presentPosition: present.count)
            table.setProof(u.id, u.proof!)
            addPresent(u.id, incarnation: u.incarnation, positioned: true)
            ctx.events.append(.memberJoined(u.id, u.address))
            if u.state == .suspect { return apply(u, now: now, ctx: &ctx) || true }
            return true
        }
        switch u.state {
        case .alive:
            // A higher incarnation beats everything; an equal one changes nothing (suspicion wins ties).
            guard u.incarnation > m.incarnation else { return false }
            let wasPresent = m.state.isPresent
            let oldIncarnation = m.incarnation
            let recovered = m.state != .alive
            m.incarnation = u.incarnation
            m.address = u.address
            m.state = .alive
            m.stateChangedAt = now
            table[u.id] = m
            table.setProof(u.id, u.proof!)
            suspicions[u.id] = nil
            if wasPresent {
                removeFromDigest(u.id, oldIncarnation)
                addToDigest(u.id, u.incarnation)
            } else {
                addPresent(u.id, incarnation: u.incarnation)
            }
            ctx.events.append(recovered ? .memberRecovered(u.id) : .memberJoined(u.id, u.address))
            return true
        case .suspect:
            guard m.state.isPresent, u.incarnation >= m.incarnation else { return false }
            if m.state == .suspect && u.incarnation == m.incarnation {
                // Another member suspects it too: a Lifeguard confirmation, news if it is a new confirmer.
                return suspicions[u.id]?.confirm(by: u.reporter) ?? false
            }
            if u.incarnation > m.incarnation {
                removeFromDigest(u.id, m.incarnation)
                addToDigest(u.id, u.incarnation)
                m.incarnation = u.incarnation
            }
            m.state = .suspect
            m.stateChangedAt = now
            table[u.id] = m
            if proven { table.setProof(u.id, u.proof!) }
            suspicions[u.id] = Suspicion(startedAt: now, incarnation: u.incarnation, by: u.reporter)
            ctx.events.append(.memberSuspect(u.id))
            if u.reporter != id { verifySuspicion(of: u.id, now: now, ctx: &ctx) }
            return true
        case .failed, .left:
            guard m.state.isPresent, u.incarnation >= m.incarnation else { return false }
            removePresent(u.id, incarnation: m.incarnation)
            m.incarnation = u.incarnation
            m.state = u.state
            m.stateChangedAt = now
            table[u.id] = m
            if proven { table.setProof(u.id, u.proof!) }
            suspicions[u.id] = nil
            ctx.events.append(u.state == .left ? .memberLeft(u.id) : .memberFailed(u.id))
            return true
        }
    }

    /// True when `u` carries its member's own signature of what it says: a key that stands for the member's
    /// id (the key already known for it, if any) and a valid signature of the statement. Anything else is
    /// refused and counted.
    @inline(never)
    mutating func isSigned(_ u: MemberUpdate, ctx: inout NodeContext) -> Bool {
        let scheme = identity.scheme
        guard let p = u.proof, scheme.nodeID(of: p.key) == u.id, table.key(u.id).map({ $0 == p.key }) ?? true,
            scheme.isValid(p.signature, of: u.statement, by: p.key)
        else {
            ctx.counters.signaturesRefused += 1
            return false
        }
        ctx.counters.signaturesChecked += 1
        return true
    }

    /// Someone says this node is suspect, failed or gone while it is not leaving: refute with the next
    /// incarnation. Alive news about ourselves (our own gossip coming back) changes nothing, nor does a claim
    /// about an earlier incarnation. A claim about a later one is one no honest peer can make (only this node
    /// raises its incarnation): it is refused and counted, so that nobody can push the incarnation to its end.
    mutating func applyAboutSelf(_ u: MemberUpdate, now: UInt64, ctx: inout NodeContext) -> Bool {
        guard u.state != .alive, !isLeaving, u.incarnation >= incarnation else { return false }
        guard u.incarnation == incarnation else {
            ctx.counters.claimsRefused += 1
            return false
        }
        setIncarnation(incarnation &+ 1)
        ctx.counters.refutations += 1
        ctx.events.append(.refuted(incarnation: incarnation))
        queue.enqueue(.member(selfUpdate))
        return false  // the refutation is queued here; the suspicion itself is not re-gossiped
    }

    /// Appends a member to the present list. `positioned`: its row already holds its position (`MemberTable.add`).
    mutating func addPresent(_ member: NodeID, incarnation: UInt64, positioned: Bool = false) {
        if !positioned { table.setPresentPosition(member, present.count) }
        present.append(member)
        candidates.add(member)
        if table.hasAnswered(member) { ring.add(member) }
        addToDigest(member, incarnation)
    }

    mutating func removePresent(_ member: NodeID, incarnation: UInt64) {
        guard let i = table.presentPosition(member) else { return }
        let last = present[present.count - 1]
        present[i] = last
        table.setPresentPosition(last, i)
        present.removeLast()
        table.setPresentPosition(member, nil)
        ring.remove(member)
        candidates.remove(member)
        removeFromDigest(member, incarnation)
    }

    func suspicionDeadline(_ s: Suspicion) -> UInt64 {
        s.startedAt + suspicionTimeouts[min(s.confirmations, suspicionTimeouts.count - 1)]
    }

    /// The soonest moment a suspicion runs out, nil when there is none; cached until `suspicions` changes.
    mutating func nextSuspicionDeadline() -> UInt64? {
        if let d = earliestSuspicionDeadline { return d }
        guard !suspicions.isEmpty else { return nil }
        var d = UInt64.max
        for s in suspicions.values { d = min(d, suspicionDeadline(s)) }
        earliestSuspicionDeadline = d
        return d
    }

    /// Declares failed every suspect whose time is up.
    mutating func expireSuspicions(now: UInt64, ctx: inout NodeContext) {
        guard let soonest = nextSuspicionDeadline(), now >= soonest else { return }
        var expired: [NodeID] = []
        for (member, s) in suspicions where now >= suspicionDeadline(s) { expired.append(member) }
        for member in expired.sortedIDs() {
            guard let inc = suspicions[member]?.incarnation, let m = table[member] else { continue }
            let u = MemberUpdate(state: .failed, id: member, incarnation: inc, address: m.address, reporter: id)
            if apply(u, now: now, ctx: &ctx) { enqueueNews(.member(u), now: now, timers: &ctx.timers) }
        }
    }

    /// Forgets failed and left members after `reclaimAfter`; returns them (the shell forgets their replay
    /// windows).
    mutating func reclaim(now: UInt64) -> [NodeID] {
        guard now >= config.reclaimAfter else { return [] }
        let due = now - config.reclaimAfter
        var forgotten: [NodeID] = []
        for g in table.ids(in: .failed, changedBy: due) + table.ids(in: .left, changedBy: due) where g != id {
            table[g] = nil
            table.removeStatus(g)
            forgotten.append(g)
        }
        return forgotten
    }
}
