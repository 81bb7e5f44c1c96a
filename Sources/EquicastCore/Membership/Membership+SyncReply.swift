/// What a pull carries and what its reply holds: bucket digests and member fingerprints on the way out, an
/// introduction for a joiner or the records of the differing buckets on the way back (docs/protocol.md, "Pulls").
extension Membership {
    /// A member's view of more than this many members pulls by fine buckets, and of more than
    /// `finestBucketsFrom` by the finest: the request grows (10 bytes a range, 40 KiB for the finest) while the
    /// reply sheds the members the requester already holds in a differing range.
    static let fineBucketsFrom = 2048
    static let finestBucketsFrom = 8192

    /// How many id ranges a pull from a view of `present` members names (0 for a joiner, which names none).
    static func pullBuckets(present: Int) -> Int {
        if present == 0 { return 0 }
        if present >= finestBucketsFrom { return Message.finestBucketCount }
        return present >= fineBucketsFrom ? Message.fineBucketCount : Message.bucketCount
    }

    /// Bucket digests and member counts at `buckets` ranges (`Message.bucketCount`, `fineBucketCount` or
    /// `finestBucketCount`).
    func bucketSummary(_ buckets: Int) -> (digests: [UInt64], counts: [UInt16]) {
        if buckets == Message.finestBucketCount { return (fineDigests, fineCounts) }
        let group = Message.finestBucketCount / buckets
        var digests = [UInt64](repeating: 0, count: buckets)
        var counts = [UInt16](repeating: 0, count: buckets)
        for f in 0..<Message.finestBucketCount {
            digests[f / group] = digests[f / group] &+ fineDigests[f]
            counts[f / group] &+= fineCounts[f]
        }
        return (digests, counts)
    }

    /// The fingerprints of the present members (self included) for a pull naming `counts.count` ranges with these
    /// counts (from `bucketSummary`): range by range, in slot order within a range. Empty if the table and the
    /// counts disagree, which they never should (the pull then goes without).
    func memberFingerprints(counts: [UInt16]) -> [UInt16] {
        let n = counts.count
        // Where each range's next fingerprint goes, and where the range ends.
        var next: [Int] = []
        var end: [Int] = []
        next.reserveCapacity(n)
        end.reserveCapacity(n)
        var total = 0
        for c in counts {
            next.append(total)
            total += Int(c)
            end.append(total)
        }
        var out = [UInt16](repeating: 0, count: total)
        let shift = UInt64(64 - n.trailingZeroBitCount)
        // One pass over the rows in slot order, which reads memory in order; each fingerprint goes to its range.
        for s in 0..<table.slotLimit {
            guard let incarnation = table.presentIncarnation(at: s) else { continue }
            let member = table.id(at: s)
            let b = Int(member.rawValue >> shift)
            guard next[b] < end[b] else { return [] }
            out[next[b]] = Membership.fingerprint(member, incarnation, suspect: table.isSuspect(at: s))
            next[b] += 1
        }
        return next == end ? out : []
    }

    /// What a pull lists of each member it holds: the low 16 bits of the member's digest term, inverted for a
    /// suspect. Suspicion is not in the digest; this way a reply that covers the member's range also carries a
    /// suspicion the requester has not heard of, as whole buckets did.
    static func fingerprint(_ member: NodeID, _ incarnation: UInt64, suspect: Bool) -> UInt16 {
        let f = UInt16(truncatingIfNeeded: digestTerm(member, incarnation))
        return suspect ? ~f : f
    }

    /// A reply to a joining node: ourselves, the members nearest the joiner on the id ring (its future ring
    /// neighbours, who will probe it), and a few random members for far-reaching gossip; `introductionSize` in
    /// all. Bounded, so that a thousand nodes joining through one seed cost the seed little: the joiner then
    /// announces itself to these and pulls the rest of the view from the fleet, not from the seed.
    func introduction(for joiner: NodeID, rng: inout DeterministicRandom) -> [GossipItem] {
        func distance(_ m: NodeID) -> UInt64 { min(m.rawValue &- joiner.rawValue, joiner.rawValue &- m.rawValue) }
        func closer(_ a: NodeID, _ b: NodeID) -> Bool {
            distance(a) < distance(b) || (distance(a) == distance(b) && a < b)
        }
        // The nearest `nearCount`, in order, by insertion in one pass over the table (a sort with this comparison
        // would be one more sort in device code; see `sortedIDs`).
        let nearCount = Membership.introductionSize * 3 / 4
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
        while chosen.count < Membership.introductionSize && chosen.count < others
            && attempts < 4 * Membership.introductionSize
        {
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

    /// A member's row as a record another node can check: with the member's own signed word.
    @inline(never)
    func syncRecord(_ m: Member) -> MemberUpdate {
        MemberUpdate(
            state: m.state, id: m.id, incarnation: m.incarnation, address: m.address, reporter: id,
            proof: table.proof(m.id))
    }
}
