@testable import EquicastCore
import Testing

@Suite struct ReplayWindowTests {
    /// Each case: sequences recorded in order, then a probe and its expected verdict.
    @Test(arguments: [
        ([UInt64](), UInt64(0), ReplayWindow.Verdict.fresh),
        ([5], 5, .duplicate),
        ([5], 6, .fresh),
        ([5], 4, .fresh),
        ([10, 8], 8, .duplicate),
        ([10, 8], 9, .fresh),
        ([300], 300 - 255, .fresh),
        ([300], 300 - 256, .stale),
        ([300], 0, .stale),
        ([1, 64], 1, .duplicate),
        ([1, 65], 1, .duplicate),
        ([1, 200], 1, .duplicate),
        ([1, 256], 1, .duplicate),
        ([1, 257], 1, .stale),
        ([1, 2, 3, 1000], 999, .fresh),
        ([1000, 999, 998], 998, .duplicate),
        ([UInt64.max - 1], UInt64.max, .fresh),
        ([UInt64.max], UInt64.max, .duplicate),
    ])
    func verdicts(recorded: [UInt64], probe: UInt64, expected: ReplayWindow.Verdict) {
        var w = ReplayWindow()
        for s in recorded {
            #expect(w.check(s) == .fresh)
            w.record(s)
        }
        #expect(w.check(probe) == expected)
    }

    /// Against a plain set: every sequence accepted once, and nothing older than the window accepted.
    @Test func matchesModelUnderRandomOrder() {
        var rng = SplitMix(seed: 7)
        var w = ReplayWindow()
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        for _ in 0..<20000 {
            let s = UInt64(rng.next() % 5000)
            let verdict = w.check(s)
            let expected: ReplayWindow.Verdict
            if seen.isEmpty || s > highest {
                expected = .fresh
            } else if highest - s >= UInt64(ReplayWindow.size) {
                expected = .stale
            } else {
                expected = seen.contains(s) ? .duplicate : .fresh
            }
            #expect(verdict == expected)
            if verdict == .fresh {
                w.record(s)
                seen.insert(s)
                highest = max(highest, s)
            }
        }
    }

    @Test func tableForgetsSendersNotHeardRecently() {
        var table = ReplayTable(capacity: 2)
        let a = NodeID(rawValue: 1), b = NodeID(rawValue: 2), c = NodeID(rawValue: 3)
        table.record(sender: a, sequence: 1)
        table.record(sender: b, sequence: 1)
        table.record(sender: a, sequence: 2)  // a is now more recent than b
        table.record(sender: c, sequence: 1)  // evicts b
        #expect(table.count == 2)
        #expect(table.check(sender: a, sequence: 2) == .duplicate)
        #expect(table.check(sender: b, sequence: 1) == .fresh)
        #expect(table.check(sender: c, sequence: 1) == .duplicate)
    }

    /// A larger table: senders heard within the last half-capacity of new senders are never forgotten, and the
    /// table never holds more than its capacity.
    @Test func tableKeepsRecentSendersWithinCapacity() {
        var table = ReplayTable(capacity: 100)
        for i in 1...1_000 {
            let id = NodeID(rawValue: UInt64(i))
            table.record(sender: id, sequence: 5)
            // A steady sender heard after every new one keeps its window throughout.
            table.record(sender: NodeID(rawValue: 0), sequence: UInt64(i))
            #expect(table.count <= 100)
        }
        for i in 951...1_000 {
            #expect(table.check(sender: NodeID(rawValue: UInt64(i)), sequence: 5) == .duplicate, "sender \(i)")
        }
        #expect(table.check(sender: NodeID(rawValue: 0), sequence: 1_000) == .duplicate)
        #expect(table.check(sender: NodeID(rawValue: 0), sequence: 999) == .duplicate)
    }
}

/// The member table against a plain dictionary model: random inserts, updates and removals, with a private
/// directory (slots reused) and a shared one (slots kept, moved addresses held per table).
@Suite struct MemberTableTests {
    @Test(arguments: [false, true])
    func matchesADictionaryModel(shared: Bool) {
        var rng = DeterministicRandom(seed: shared ? 2 : 1)
        let directory = MemberDirectory(shared: shared, salt: 99)
        var table = MemberTable(directory: directory, scheme: .ed25519)
        var other = MemberTable(directory: directory, scheme: .ed25519)  // a second node sharing (or not) the directory
        var model: [NodeID: Member] = [:]
        var statusModel: [NodeID: NodeStatus] = [:]
        let ids = (0..<400).map { _ in NodeID(rawValue: rng.next()) }
        for step in 0..<20_000 {
            let id = ids[rng.below(ids.count)]
            switch rng.below(6) {
            case 0, 1:
                let m = Member(
                    id: id, address: SocketAddress(ipv4: 10, 0, UInt8(rng.below(2)), 1, port: 7946),
                    state: MemberState(rawValue: UInt8(rng.below(4)))!, incarnation: rng.next() >> 40,
                    stateChangedAt: UInt64(step), lastHeard: UInt64(rng.below(1000)))
                table[id] = m
                model[id] = m
                if shared && rng.below(2) == 0 { other[id] = m }
            case 2:
                table[id] = nil
                model[id] = nil
            case 3:
                // Statuses share the slots; a node's status may be known before (or after) the node itself.
                let st = NodeStatus(
                    node: id, productTag: rng.next(), sequence: rng.next(), installedVersion: rng.next() >> 32,
                    targetVersion: rng.next() >> 32, state: UpdateState(rawValue: UInt8(rng.below(10)))!,
                    chunksHave: UInt16(rng.below(100)), chunksTotal: 100)
                table.setStatus(st)
                statusModel[id] = st
            case 4:
                table.removeStatus(id)
                statusModel[id] = nil
            default:
                #expect(table[id] == model[id], "step \(step)")
                #expect(table.status(id) == statusModel[id], "step \(step)")
            }
        }
        #expect(table.statusCount == statusModel.count)
        #expect(table.statuses.sorted { $0.node < $1.node } == statusModel.values.sorted { $0.node < $1.node })
        #expect(table.count == model.count)
        #expect(table.values.sorted { $0.id < $1.id } == model.values.sorted { $0.id < $1.id })
        for state in MemberState.allCases {
            #expect(table.count(state) == model.values.filter { $0.state == state }.count)
            #expect(Set(table.ids(in: state)) == Set(model.values.filter { $0.state == state }.map(\.id)))
        }
        // What the pull code reads slot by slot agrees with the model.
        var scanned: [NodeID: UInt64?] = [:]
        for s in 0..<table.slotLimit where table.isKnown(slot: s) {
            scanned.updateValue(table.presentIncarnation(at: s), forKey: table.id(at: s))
        }
        #expect(scanned == model.mapValues { $0.state.isPresent ? $0.incarnation : nil })
        if !shared { #expect(directory.slotCount <= ids.count) }
        // A private directory frees a slot once neither the member nor its status is held.
        for id in ids {
            table[id] = nil
            if !shared { #expect((directory.slot(of: id) != nil) == (statusModel[id] != nil)) }
            table.removeStatus(id)
            if !shared { #expect(directory.slot(of: id) == nil) }
        }
    }

    @Test func idIndexAgreesWithADictionary() {
        var rng = DeterministicRandom(seed: 3)
        var index = IDIndex(salt: 5)
        var model: [UInt64: UInt32] = [:]
        let keys = (0..<3_000).map { _ in rng.next() } + [0, UInt64.max]
        for _ in 0..<50_000 {
            let k = keys[rng.below(keys.count)]
            if model[k] == nil, rng.below(3) > 0 {
                let v = UInt32(rng.below(1 << 20))
                index.insert(k, v)
                model[k] = v
            } else if rng.below(2) == 0 {
                index.remove(k)
                model[k] = nil
            }
            #expect(index.find(k) == model[k])
        }
        for k in keys { #expect(index.find(k) == model[k]) }
    }
}
