/// The reply to a member's pull: what the requester lacks of the buckets whose digests differ from ours.
extension Membership {
    /// A pull's reply as it is filled: the records, their encoded size against the budget, and which slots are
    /// already in it (one bit each).
    struct PullReply {
        var items: [GossipItem]
        var used: Int
        let budget: Int
        var sent: [UInt64]

        /// Appends `item` unless it would pass the byte budget or `itemsMax`; false when it did not fit.
        mutating func add(_ item: GossipItem, itemsMax: Int) -> Bool {
            if used + item.encodedByteCount > budget || items.count > itemsMax { return false }
            items.append(item)
            used += item.encodedByteCount
            return true
        }

        func contains(slot s: Int) -> Bool { sent[s / 64] & (UInt64(1) << UInt64(s % 64)) != 0 }
        mutating func mark(slot s: Int) { sent[s / 64] |= UInt64(1) << UInt64(s % 64) }
    }

    /// The requester's fingerprints, range by range, and where each range's start (the last entry: where they
    /// end).
    struct ListedFingerprints {
        let fingerprints: [UInt16]
        let starts: [Int]

        init(counts: [UInt16], fingerprints: [UInt16]) {
            self.fingerprints = fingerprints
            var starts: [Int] = []
            if !fingerprints.isEmpty {
                starts.reserveCapacity(counts.count + 1)
                var total = 0
                for c in counts {
                    starts.append(total)
                    total += Int(c)
                }
                starts.append(total)
            }
            self.starts = starts
        }

        var isEmpty: Bool { starts.isEmpty }

        func lists(_ member: NodeID, _ incarnation: UInt64, suspect: Bool, bucket b: Int) -> Bool {
            let f = Membership.fingerprint(member, incarnation, suspect: suspect)
            for i in starts[b]..<starts[b + 1] where fingerprints[i] == f { return true }
            return false
        }
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
    func differingBuckets(
        _ theirs: [UInt64], counts theirCounts: [UInt16], fingerprints: [UInt16] = [], rng: inout DeterministicRandom
    ) -> [GossipItem] {
        let n = theirs.count
        let ours = bucketSummary(n)
        let order = differingBucketOrder(theirs, ours: ours, theirCounts: theirCounts, rng: &rng)
        let first = GossipItem.member(selfUpdate)
        var reply = PullReply(
            items: [first], used: Message(type: .syncResponse, digest: 0).headerByteCount + first.encodedByteCount,
            budget: min(config.syncReplyByteBudget, FrameLimits.streamPayloadBudget),
            sent: [UInt64](repeating: 0, count: (table.slotLimit + 63) / 64))
        let shift = UInt64(64 - n.trailingZeroBitCount)
        // Our latest departures first, those still departed (read from the row before a record is built).
        for s32 in table.recentDepartures {
            let s = Int(s32)
            guard !reply.contains(slot: s), table.isKnown(slot: s), table.presentIncarnation(at: s) == nil else {
                continue
            }
            let b = Int(table.id(at: s).rawValue >> shift)
            guard theirs[b] != ours.digests[b] else { continue }
            guard reply.add(.member(syncRecord(table.member(at: s))), itemsMax: config.membersMax) else {
                return reply.items
            }
            reply.mark(slot: s)
        }
        let listed = ListedFingerprints(counts: theirCounts, fingerprints: fingerprints)
        let (byRank, rankStarts) = differingMembers(order, buckets: n, shift: shift, reply: reply, listed: listed)
        for (r, b) in order.enumerated() {
            var bucket: [Int] = []
            // Present members the requester listed.
            var held: [Int] = []
            for e in byRank[rankStarts[r]..<rankStarts[r + 1]] {
                let s = Int(truncatingIfNeeded: e & 0xffff_ffff)
                if e & Membership.listedBit != 0 { held.append(s) } else { bucket.append(s) }
            }
            if bucket.isEmpty && !listed.isEmpty {
                let selfListed =
                    Int(id.rawValue >> shift) == b && listed.lists(id, incarnation, suspect: false, bucket: b)
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
            if reply.used + size > reply.budget || reply.items.count + records.count > config.membersMax + 1 { break }
            reply.items += records
            reply.used += size
        }
        return reply.items
    }

    /// The buckets whose digests differ, in reply order: those where we are ahead, most gain first, then lower
    /// bucket; then the others from a random start.
    func differingBucketOrder(
        _ theirs: [UInt64], ours: (digests: [UInt64], counts: [UInt16]), theirCounts: [UInt16],
        rng: inout DeterministicRandom
    ) -> [Int] {
        let n = theirs.count
        // Gain (< 65,536, counts are UInt16) inverted in the high bits, the bucket in the low 16.
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
        return ahead.map { Int($0 & 0xffff) } + other
    }

    /// Set in a `differingMembers` entry when the requester listed the member.
    static let listedBit = UInt64(1) << 32

    /// The members of the differing buckets not yet in the reply, as entries (bucket rank << 33, `listedBit`,
    /// slot) sorted by rank, and where each rank's entries start (the last entry where they end).
    func differingMembers(
        _ order: [Int], buckets n: Int, shift: UInt64, reply: PullReply, listed: ListedFingerprints
    )
        -> (entries: [UInt64], rankStarts: [Int])
    {
        var rank = [Int32](repeating: -1, count: n)
        for (r, b) in order.enumerated() { rank[b] = Int32(r) }
        // One pass over the rows in slot order (which reads memory in order, where walking bucket by bucket would
        // jump about the table): the members of differing buckets, each with its bucket's rank and whether the
        // requester listed it, then sorted by rank (a counting sort: ranks are fewer than members).
        var found: [UInt64] = []
        var perRank = [Int](repeating: 0, count: order.count + 1)
        // The bucket is told by the id, read before the row: a simulator's nodes share one array of ids, which
        // stays in cache, while each node's rows do not; rows of buckets that do not differ are never read.
        for s in 0..<table.slotLimit {
            let member = table.id(at: s)
            let b = Int(member.rawValue >> shift)
            guard rank[b] >= 0, table.isKnown(slot: s), !reply.contains(slot: s), member != id else { continue }
            var entry = UInt64(rank[b]) << 33 | UInt64(s)
            if !listed.isEmpty, let incarnation = table.presentIncarnation(at: s),
                listed.lists(member, incarnation, suspect: table.isSuspect(at: s), bucket: b)
            {
                entry |= Membership.listedBit
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
        return (byRank, perRank)
    }
}
