@testable import EquicastCore
import Testing

/// Stream frames are numbered per receiver, so that a reply overtaken by the same sender's later reply on another
/// connection is not refused as stale when the sender answered many others in between.
@Suite struct StreamSequencerTests {
    typealias F = FrameFixture
    static let a = NodeID(rawValue: 0xa)
    static let b = NodeID(rawValue: 0xb)

    /// The origin answers a's first chunk request, then 300 pushed chunks from the operator's tool, then a's
    /// second request; the small second reply reaches a first.
    @Test func replyOvertakenByALaterOneIsAccepted() throws {
        var sequencer = StreamSequencer(base: 1 << 32)
        let first = sequencer.next(to: Self.a)
        for _ in 0..<300 { _ = sequencer.next(to: Self.b) }
        let second = sequencer.next(to: Self.a)
        #expect(sequencer.counter - first > UInt64(ReplayWindow.size))  // one counter would put them this far apart
        var opener = F.opener()
        _ = try opener.open(F.frame(sequence: second), transport: .stream)
        _ = try opener.open(F.frame(sequence: first), transport: .stream)
        #expect(throws: WireError.replayed(sender: F.sender, sequence: first)) {
            try opener.open(F.frame(sequence: first), transport: .stream)
        }
    }

    /// Whatever the mix of receivers (more than it remembers, and frames to addresses whose node is unknown), the
    /// numbers each receiver gets rise strictly, and each is above every number handed out before it was handed
    /// out to nobody in particular.
    @Test(arguments: [1, 2, 3])
    func numbersOneReceiverSeesOnlyRise(seed: UInt64) {
        var rng = DeterministicRandom(seed: seed)
        var sequencer = StreamSequencer(base: 5 << 32)
        var last: [UInt64: UInt64] = [:]
        var highestToAnyone: UInt64 = 5 << 32
        var unaddressed: UInt64 = 0
        for _ in 0..<20_000 {
            let pick = rng.below(StreamSequencer.receiversMax * 2 + 1)
            let receiver = pick == 0 ? nil : NodeID(rawValue: UInt64(pick))
            let n = sequencer.next(to: receiver)
            #expect(n > unaddressed)
            #expect(n <= sequencer.counter)
            if let r = receiver {
                if let previous = last[r.rawValue] { #expect(n > previous) }
                last[r.rawValue] = n
            } else {
                #expect(n > highestToAnyone)
                unaddressed = n
            }
            highestToAnyone = max(highestToAnyone, n)
        }
        #expect(last.count == StreamSequencer.receiversMax * 2)
    }

    /// A restarted node starts above its earlier life's numbers (its base), for every receiver.
    @Test func aRestartStartsAboveTheEarlierLife() {
        var before = StreamSequencer(base: 1 << 32)
        var highest: UInt64 = 0
        for k in 0..<1_000 { highest = max(highest, before.next(to: NodeID(rawValue: UInt64(k % 7)))) }
        var after = StreamSequencer(base: 2 << 32)
        #expect(after.next(to: NodeID(rawValue: 3)) > highest)
    }
}
