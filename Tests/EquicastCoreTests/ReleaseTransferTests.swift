@testable import EquicastCore
import Testing

/// The bookkeeping of one release's peers, below the swarm tests: whom a new chunk makes us tell our bitfield.
@Suite struct ReleaseTransferTests {
    static func peer(_ id: UInt64, holding chunks: [Int], of count: Int = 16) -> ReleaseTransfer.Peer {
        var haves = ChunkBitfield(count: count)
        for i in chunks { haves.insert(i) }
        var p = ReleaseTransfer.Peer(
            id: NodeID(rawValue: id), address: SocketAddress(ipv4: 10, 0, 0, UInt8(id), port: 7946), haves: haves,
            heardAt: 0)
        p.toldCurrent = true
        return p
    }

    @Test(arguments: [
        // (chunk we now hold, the peers' chunks, the peers to tell again)
        (5, [[], [5], [1, 2, 3]], [1, 3]),
        (0, [[0], [0, 1], [0, 15]], []),
        (15, [[15], [], [0, 14]], [2, 3]),
        (7, [[Int](0..<16), [Int](0..<7), [Int](8..<16)], [2, 3]),
    ])
    func onlyPeersThatLackANewChunkAreToldOfIt(chunk: Int, holdings: [[Int]], toldAgain: [UInt64]) {
        var peers = ReleaseTransfer.Peers()
        for (k, chunks) in holdings.enumerated() {
            peers[NodeID(rawValue: UInt64(k + 1))] = Self.peer(UInt64(k + 1), holding: chunks)
        }
        peers.markUntold(lacking: chunk)
        #expect(peers.all.filter { !$0.toldCurrent }.map(\.id.rawValue) == toldAgain)
    }

    @Test func aPeerStaysUntoldUntilItIsTold() {
        var peers = ReleaseTransfer.Peers()
        peers[NodeID(rawValue: 1)] = Self.peer(1, holding: [2])
        peers[NodeID(rawValue: 1)]!.toldCurrent = false
        // A later chunk it already holds does not count as telling it the earlier one.
        peers.markUntold(lacking: 2)
        #expect(peers[NodeID(rawValue: 1)]?.toldCurrent == false)
    }
}
