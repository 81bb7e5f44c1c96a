/// A node's ring neighbours, kept up to date incrementally: the `perSide` nearest successors and predecessors of
/// `selfID` on the 64-bit id ring, and as many again beyond them on each side, which take the place of suspect
/// neighbours in `watched`. Adding a member costs O(perSide); removing a tracked member marks the tracker for one
/// rescan of the member list the next time neighbours are read. (Sorting the whole list on every change would cost
/// O(N) per change, which a 10,000-node simulation cannot afford.)
struct RingTracker {
    let selfID: NodeID
    let perSide: Int
    /// Members tracked on each side: the neighbours and the reserve beyond them.
    private var tracked: Int { 2 * perSide }
    private(set) var successors: [NodeID] = []  // nearest first, by clockwise distance
    private(set) var predecessors: [NodeID] = []  // nearest first, by counter-clockwise distance
    private(set) var needsRescan = false

    init(selfID: NodeID, perSide: Int) {
        self.selfID = selfID
        self.perSide = perSide
    }

    private func clockwise(_ id: NodeID) -> UInt64 { id.rawValue &- selfID.rawValue }
    private func counterClockwise(_ id: NodeID) -> UInt64 { selfID.rawValue &- id.rawValue }

    mutating func add(_ id: NodeID) {
        guard id != selfID, perSide > 0 else { return }
        insert(id, into: &successors, distance: clockwise)
        insert(id, into: &predecessors, distance: counterClockwise)
    }

    private func insert(_ id: NodeID, into list: inout [NodeID], distance: (NodeID) -> UInt64) {
        if list.contains(id) { return }
        let d = distance(id)
        if list.count >= tracked, let last = list.last, distance(last) < d { return }
        var at = list.count
        while at > 0 && distance(list[at - 1]) > d { at -= 1 }
        list.insert(id, at: at)
        if list.count > tracked { list.removeLast() }
    }

    mutating func remove(_ id: NodeID) {
        if successors.contains(id) || predecessors.contains(id) { needsRescan = true }
    }

    /// Rebuilds from the present members (called only after a neighbour was removed).
    mutating func rescan(_ members: [NodeID]) {
        successors = []
        predecessors = []
        needsRescan = false
        for id in members { add(id) }
    }

    /// The `perSide` nearest successors then predecessors, nearest first, without duplicates (a small ring can
    /// have the same node on both sides).
    var neighbours: [NodeID] { nearest { _ in false } }

    /// The same, with suspect members passed over for the next ones beyond: the members this node probes. When
    /// many nodes crash at once a crashed node's neighbours may have crashed too, and until now nobody watched
    /// it closely; the members beyond a suspect neighbour are watched from the moment it is suspected, not only
    /// once it is declared failed.
    func watched(isSuspect: (NodeID) -> Bool) -> [NodeID] { nearest(skipping: isSuspect) }

    private func nearest(skipping skip: (NodeID) -> Bool) -> [NodeID] {
        var out: [NodeID] = []
        var taken = (successors: 0, predecessors: 0)
        for i in 0..<max(successors.count, predecessors.count) {
            if i < successors.count, taken.successors < perSide, !skip(successors[i]) {
                taken.successors += 1
                if !out.contains(successors[i]) { out.append(successors[i]) }
            }
            if i < predecessors.count, taken.predecessors < perSide, !skip(predecessors[i]) {
                taken.predecessors += 1
                if !out.contains(predecessors[i]) { out.append(predecessors[i]) }
            }
        }
        return out
    }
}
