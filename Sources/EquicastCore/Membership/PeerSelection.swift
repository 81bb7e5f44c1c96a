import EquicastCrypto

/// Pure functions that choose whom a node talks to. Both are deterministic given their inputs, so every node's
/// choices can be recomputed (and tested, and simulated) exactly.
public enum PeerSelection {
    /// The round's gossip targets, as positions in the caller's member list (which holds `memberCount` ids).
    /// One BLAKE2b hash of (self, round, view digest) seeds the choice; the view digest stands for the sorted
    /// member ids, so two nodes with the same view derive unrelated but reproducible picks, and each node's picks
    /// sweep the membership uniformly from round to round. Costs O(count), not O(members): it has to run every
    /// round on every node of a 10,000-node simulation. `excluding` is the caller's own position, if listed.
    public static func rendezvousTargets(
        selfID: NodeID, round: UInt64, viewDigest: UInt64, memberCount: Int, count: Int, excluding: Int?
    ) -> [Int] {
        let available = memberCount - (excluding == nil ? 0 : 1)
        let wanted = min(count, available)
        guard wanted > 0 else { return [] }
        var key = ByteWriter(capacity: 24)
        key.write(selfID.rawValue)
        key.write(round)
        key.write(viewDigest)
        let digest = Digest256(hashing: key.bytes)
        var rng = DeterministicRandom(seed: digest.words.0 ^ digest.words.1.byteSwapped)
        var picks: [Int] = []
        picks.reserveCapacity(wanted)
        if wanted * 2 >= available {
            // Small view: a partial Fisher-Yates shuffle of all positions.
            var positions = (0..<memberCount).filter { $0 != excluding }
            for i in 0..<wanted {
                let j = i + rng.below(positions.count - i)
                positions.swapAt(i, j)
                picks.append(positions[i])
            }
            return picks
        }
        while picks.count < wanted {
            let p = rng.below(memberCount)
            if p != excluding && !picks.contains(p) { picks.append(p) }
        }
        return picks
    }

    /// The ring neighbours of `selfID` among `sortedIDs` (ascending, may include self): `perSide` successors and
    /// `perSide` predecessors on the id ring, nearest first, without duplicates when the ring is small.
    public static func ringNeighbours(selfID: NodeID, sortedIDs: [NodeID], perSide: Int) -> [NodeID] {
        let others = sortedIDs.filter { $0 != selfID }
        guard !others.isEmpty, perSide > 0 else { return [] }
        // Index of the first id above self: its successor.
        var lo = 0
        var hi = others.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if others[mid] < selfID { lo = mid + 1 } else { hi = mid }
        }
        var result: [NodeID] = []
        let n = others.count
        for k in 0..<min(perSide, n) {
            let succ = others[(lo + k) % n]
            if !result.contains(succ) { result.append(succ) }
            let pred = others[((lo - 1 - k) % n + n) % n]
            if !result.contains(pred) { result.append(pred) }
        }
        return result
    }
}
