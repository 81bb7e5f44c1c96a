import EquicastCrypto

/// What every part of a node shares and no part owns: its identity, its randomness, the sealing of its frames,
/// its counters, its timer table and its output queues. The shell passes it `inout` with every call into a part;
/// it holds no protocol state.
struct NodeContext {
    let identity: NodeIdentity
    var id: NodeID { identity.id }
    let address: SocketAddress
    var rng: DeterministicRandom
    var sealer: FrameSealer
    /// The last datagram sequence number sent (datagrams share one number space across receivers).
    var datagramSequence: UInt64
    var streamSequence: StreamSequencer
    /// Ids of the streams this node opens, for syncs and transfers alike.
    var nextStreamID: UInt64 = 1
    var counters = NodeCounters()
    var timers = TimerTable()
    var transmits = OutputQueue<Transmit>()
    var events = OutputQueue<NodeEvent>()
    var storage = OutputQueue<StorageRequest>()

    init(
        identity: NodeIdentity, address: SocketAddress, bootCount: UInt64, rng: DeterministicRandom,
        sealer: FrameSealer
    ) {
        self.identity = identity
        self.address = address
        self.rng = rng
        self.sealer = sealer
        self.datagramSequence = bootCount << 32
        self.streamSequence = StreamSequencer(base: bootCount << 32)
    }

    mutating func takeStreamID() -> UInt64 {
        let sid = nextStreamID
        nextStreamID += 1
        return sid
    }

    /// The next sequence number for a frame on `transport` to `receiver` (nil: a stream opened to an address
    /// whose node is not known yet): datagrams and stream frames are numbered separately, and receivers keep a
    /// replay window for each (`FrameOpener`); stream frames are numbered per receiver (`StreamSequencer`).
    mutating func nextSequence(_ transport: FrameTransport, to receiver: NodeID?) -> UInt64 {
        if transport == .datagram {
            datagramSequence &+= 1
            return datagramSequence
        }
        return streamSequence.next(to: receiver)
    }

    /// Seals a message body into a frame and counts it as sent.
    mutating func seal(
        _ body: [UInt8], messageClass: MessageClass, on transport: FrameTransport, to receiver: NodeID?
    ) -> [UInt8] {
        let frame = sealer.seal(
            body, messageClass: messageClass, sequence: nextSequence(transport, to: receiver), nonce: rng.bytes(24))
        counters.packetsOut += 1
        counters.bytesOut += UInt64(frame.count)
        return frame
    }

    /// A membership message as a frame.
    mutating func seal(
        _ message: Message, on transport: FrameTransport, to receiver: NodeID?, messageClass: MessageClass = .control
    ) -> [UInt8] {
        seal(message.encode(), messageClass: messageClass, on: transport, to: receiver)
    }

    /// A transfer message as a frame.
    mutating func seal(_ message: TransferMessage, on transport: FrameTransport, to receiver: NodeID?) -> [UInt8] {
        seal(message.encode(), messageClass: .data, on: transport, to: receiver)
    }

    /// A reply on an accepted connection.
    mutating func reply(_ message: TransferMessage, connection: UInt64, to receiver: NodeID) {
        transmits.append(.streamReply(connection: connection, bytes: seal(message, on: .stream, to: receiver)))
    }
}
