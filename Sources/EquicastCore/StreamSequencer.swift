/// Numbers a node's stream (TCP) frames per receiving node.
///
/// A receiver keeps one replay window per sender for stream frames, across all its connections to that sender,
/// and refuses a frame more than `ReplayWindow.size` numbers behind the newest it accepted. With one counter for
/// every receiver, the distance between two of the frames a receiver gets is the number of frames the sender
/// sealed for anyone in between: a chunk reply sealed just before the sender answers 300 pushed chunks, and
/// overtaken on the wire by a small reply sealed just after, arrived stale and was thrown away after its bytes
/// had crossed both links (bench/rollout.py, N = 16: the first chunks the origin served during the push; the
/// origin, which serves each chunk once before any twice, served them again only at the end of its pass, and they
/// were the last chunks most hosts got). Numbered per receiver, a frame can only be overtaken by the receiver's
/// own other requests to the same sender.
///
/// Every number is above every number handed out before to anyone (a receiver forgotten here gets a number from
/// the shared counter, which is ahead of all of them), so the numbers one receiver sees from this node never go
/// backwards, across restarts too (the counter starts at the node's restart base).
struct StreamSequencer {
    /// The highest number handed out.
    private(set) var counter: UInt64
    /// The highest number handed out for no known receiver (a sync request to a seed address): every later number
    /// is above it, since that frame may have gone to any receiver.
    private var floor: UInt64
    /// Receivers and the last number each got, at most `receiversMax`.
    private var receivers: [(node: NodeID, last: UInt64)] = []

    /// Receivers remembered; beyond it the one served longest ago is forgotten (and numbered from the counter
    /// when it comes back).
    static let receiversMax = 64

    init(base: UInt64) {
        counter = base
        floor = base
    }

    /// The number for the next frame to `receiver` (nil: not known, as for a first contact by address).
    mutating func next(to receiver: NodeID?) -> UInt64 {
        counter &+= 1
        guard let receiver else {
            floor = counter
            return counter
        }
        for k in receivers.indices where receivers[k].node == receiver {
            let n = max(receivers[k].last, floor) + 1
            receivers[k].last = n
            return n
        }
        if receivers.count >= StreamSequencer.receiversMax {
            var oldest = 0
            for k in receivers.indices where receivers[k].last < receivers[oldest].last { oldest = k }
            receivers.remove(at: oldest)
        }
        receivers.append((receiver, counter))
        return counter
    }
}
