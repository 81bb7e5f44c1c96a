/// What carries out a node's outputs: the daemon, the simulator and the test fleet each have one.
/// `Node.drain(into:)` hands it the outputs in the node's one drain order.
public protocol NodeDriver {
    /// Carry out a storage request; the answer (`releaseOpened`, `serveChunk`, `chunkStoreFailed`) may be given
    /// at once, into the node.
    mutating func carryOut(_ request: StorageRequest, for node: Node)
    mutating func send(_ transmit: Transmit, from node: Node)
    /// Log, count or act on an event; acting may call into the node (its new outputs are drained too).
    mutating func handle(_ event: NodeEvent, of node: Node)
}

extension Node {
    /// Drains every output into `driver` in the node's drain order (see `Node`): storage requests, transmits,
    /// events, and again until all three are empty.
    public func drain<Driver: NodeDriver>(into driver: inout Driver) {
        repeat {
            while let request = pollStorage() { driver.carryOut(request, for: self) }
            while let transmit = pollTransmit() { driver.send(transmit, from: self) }
            while let event = pollEvent() { driver.handle(event, of: self) }
        } while hasPendingOutputs
    }
}
