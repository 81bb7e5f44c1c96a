// libFuzzer target: a node fed one well-sealed frame of any content, as a datagram, a request on an accepted
// stream, or the reply to a pull or a transfer request it made, then its timers: membership and transfer
// messages past the frame, through everything they reach (merging, signatures, claims, pulls, releases).
// Built by bench/fuzz.sh. Mode byte: bit 0 message class (membership, data), bits 1-2 the route.
import EquicastCore
import EquicastCrypto

@_cdecl("LLVMFuzzerInitialize")
public func nodeFuzzSeeds(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    var seeds: [[UInt8]] = []
    for route: UInt8 in [0, 2, 4, 6] {
        seeds += FuzzSeeds.membershipMessages().map { [route] + $0 }
        seeds += FuzzSeeds.transferMessages().map { [route | 1] + $0 }
    }
    FuzzSeeds.write(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func nodeFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let payload = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let node = FuzzSeeds.node()
    // A pull and a chunk request in flight, so that replies have somewhere to go.
    node.handleCommand(.join([FuzzSeeds.peerAddress]), now: 1_000)
    var pull: UInt64?
    while let t = node.pollTransmit() {
        if case .streamOpen(let sid, _, _) = t { pull = sid }
    }
    let frame = FuzzSeeds.sealer.seal(
        payload, messageClass: mode & 1 == 0 ? .control : .data, sequence: 1 << 32 | 1,
        nonce: [UInt8](repeating: mode, count: 24))
    switch (mode >> 1) & 3 {
    case 0: node.handleDatagram(frame, from: FuzzSeeds.peerAddress, now: 1_000)
    case 1: node.handleStreamFrame(frame, stream: .accepted(7), now: 1_000)
    default: node.handleStreamFrame(frame, stream: .outgoing(pull ?? 1), now: 1_000)
    }
    var now: UInt64 = 1_000
    for _ in 0..<4 {
        while node.pollTransmit() != nil {}
        while node.pollEvent() != nil {}
        while node.pollStorage() != nil {}
        now = min(max(now + 1, node.pollTimeout()), now + 10_000)
        node.handleTimeout(now: now)
    }
    return 0
}
