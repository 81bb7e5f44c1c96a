/// The simulator's agenda: a binary min-heap ordered by (time, insertion order), so events due at the same tick
/// run in the order they were scheduled and a run is reproducible. Push and pop cost O(log n).
struct EventQueue<Payload> {
    private struct Entry {
        let time: UInt64
        let order: UInt64
        let payload: Payload

        func precedes(_ other: Entry) -> Bool {
            time != other.time ? time < other.time : order < other.order
        }
    }

    private var heap: [Entry] = []
    private var nextOrder: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    /// When the earliest event is due; nil when there is none.
    var nextTime: UInt64? { heap.first?.time }
    /// The earliest event, left in place.
    var peek: Payload? { heap.first?.payload }

    mutating func reserve(_ n: Int) { heap.reserveCapacity(n) }

    mutating func push(_ payload: Payload, at time: UInt64) {
        heap.append(Entry(time: time, order: nextOrder, payload: payload))
        nextOrder &+= 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: UInt64, payload: Payload)? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            let n = heap.count
            while true {
                let left = 2 * parent + 1
                if left >= n { break }
                let right = left + 1
                let child = right < n && heap[right].precedes(heap[left]) ? right : left
                guard heap[child].precedes(heap[parent]) else { break }
                heap.swapAt(child, parent)
                parent = child
            }
        }
        return (first.time, first.payload)
    }
}
