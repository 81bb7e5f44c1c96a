import EquicastCore
import EquicastPosix

/// The daemon's TCP connections: peers' requests accepted and answered in order, this node's requests to peers
/// (one pending per connection), and control-socket clients.
extension Daemon {
    /// A TCP or control-socket connection. Peer connections stay open between requests: a node pulling
    /// chunks from a peer sends them one after another on one connection, which keeps TCP's window open
    /// instead of paying a handshake and slow start per chunk. Each request gets its reply, in order (a chunk's
    /// as one frame per piece, until the node no longer `awaitsMoreFrames`), so replies are matched to requests
    /// by position.
    final class Connection {
        enum Kind {
            /// Accepted from a peer (or the operator tool): requests in, replies out.
            case peer(accepted: UInt64)
            /// Opened by this node to `address`: requests out, replies in.
            case outgoing(address: SocketAddress)
            case control
        }
        let socket: StreamSocket
        let kind: Kind
        /// Accepted peer connections: the peer's address with port 0 (per-address budget).
        let host: SocketAddress?
        /// Accepted peer connections: true once a frame has opened with the fleet key. Until then the connection
        /// holds a slot only until `deadline`, which reads do not move, and a newcomer may take its slot.
        var authenticated = false
        var framer: StreamFramer
        var inbound: [UInt8] = []
        var outbound: [UInt8] = []
        var written = 0
        var closeAfterWrite = false
        /// Outgoing: the node's stream ids whose replies are due, oldest first.
        var pending: [UInt64] = []
        /// Accepted: replies the node has queued here (one per request handled).
        var replies = 0
        var deadline: UInt64
        /// The socket's receive low-water mark as last set (peer connections: what the frame in progress needs).
        var lowWater = 1

        init(socket: StreamSocket, kind: Kind, deadline: UInt64, keyIDs: [UInt32], host: SocketAddress? = nil) {
            self.socket = socket
            self.framer = StreamFramer(keyIDs: keyIDs)
            self.kind = kind
            self.deadline = deadline
            self.host = host
        }

        var isAccepted: Bool {
            if case .peer = kind { return true }
            return false
        }
        var isControl: Bool {
            if case .control = kind { return true }
            return false
        }

        /// Appends bytes to send, dropping what was already written.
        func queue(_ bytes: [UInt8]) {
            if written == outbound.count {
                outbound = bytes
                written = 0
            } else {
                outbound += bytes
            }
        }
    }

    /// A connection waiting on its peer this long (a reply, the rest of a request) is closed as failed.
    static let connectionTimeout: UInt64 = 10_000
    /// An outgoing connection with no request pending is closed after this long; an accepted one that has
    /// answered everything after `connectionTimeout`, so the side that opened it normally closes it first.
    static let idleTimeout: UInt64 = 1_000
    /// Requests pending on one outgoing connection; more to the same peer open another. One: a peer's uplink
    /// is shared per TCP connection, and two chunk requests queued on one connection would get one share
    /// where two connections get two (measured with bench/rollout.sh: pipelining two on one connection left
    /// some hosts at half the download rate of others).
    static let pipelineMax = 1
    /// The largest receive low-water mark set: half an average chunk, so a reply wakes the loop two or three
    /// times. (Linux grows the receive buffer to fit the mark, and wakes the reader early anyway when its
    /// receive window would otherwise close.)
    static let lowWaterMax = 32 << 10
    /// Connections accepted from peers (and the operator tool) open at once. Connections this node opens are
    /// bounded by its own requests (`ReleaseSettings`), control clients by `controlClientsMax`: a stranger filling
    /// one budget leaves the others working.
    static let acceptedMax = 64
    /// Accepted connections from one address that have not yet authenticated.
    static let unauthenticatedPerAddressMax = 8
    /// An accepted connection must bring a frame that opens with the fleet key this soon; reads do not extend it.
    static let authenticationTimeout: UInt64 = 3_000
    static let controlClientsMax = 8
    /// A control client must send its request line this soon.
    static let controlTimeout: UInt64 = 5_000
    /// Connections accepted per listener per wake-up, so a flood of connects cannot starve the loop.
    static let acceptBurstMax = 64

    /// Accepts what is waiting on `listener` (a bounded number per call, so the loop never spins on it). When a
    /// budget is full, the newcomer takes the slot of the oldest connection that has not authenticated (for
    /// control clients: the oldest), or is closed at once if every slot is held by an authenticated peer.
    func acceptAll(_ listener: Listener, control isControl: Bool, now: UInt64) {
        for _ in 0..<Daemon.acceptBurstMax {
            let accepted: (socket: StreamSocket, from: SocketAddress?)?
            do throws(PosixError) { accepted = try listener.accept() } catch {
                log.log(.warning, "accept: \(error)")
                return
            }
            guard let (socket, from) = accepted else { return }
            if isControl {
                if !makeRoom(control: true, host: nil, now: now) { continue }
                connections[socket.fd] = Connection(
                    socket: socket, kind: .control, deadline: now + Daemon.controlTimeout, keyIDs: [])
                continue
            }
            let host = from?.with(port: 0)
            if !makeRoom(control: false, host: host, now: now) {
                connectionsRefused += 1
                continue  // `socket` closes here
            }
            connections[socket.fd] = Connection(
                socket: socket, kind: .peer(accepted: nextAcceptID), deadline: now + Daemon.authenticationTimeout,
                keyIDs: keyIDs, host: host)
            nextAcceptID += 1
        }
    }

    /// Frees a slot for a new accepted connection when its budget (or its address's) is full; false when none can
    /// be freed.
    func makeRoom(control: Bool, host: SocketAddress?, now: UInt64) -> Bool {
        var inBudget = 0
        var fromHost = 0
        var oldest: Connection?
        var oldestFromHost: Connection?
        for c in connections.values where control ? c.isControl : c.isAccepted {
            inBudget += 1
            if c.authenticated { continue }
            if oldest.map({ c.deadline < $0.deadline }) ?? true { oldest = c }
            if !control && c.host == host {
                fromHost += 1
                if oldestFromHost.map({ c.deadline < $0.deadline }) ?? true { oldestFromHost = c }
            }
        }
        let full = inBudget >= (control ? Daemon.controlClientsMax : Daemon.acceptedMax)
        guard let victim = fromHost >= Daemon.unauthenticatedPerAddressMax ? oldestFromHost : full ? oldest : nil
        else { return !full }
        if !control { connectionsEvicted += 1 }
        closeConnection(victim.socket.fd, victim, now: now)
        return true
    }

    func service(_ c: Connection, events: PollEvents, now: UInt64) {
        let fd = c.socket.fd
        if c.socket.connecting {
            do throws(PosixError) { try c.socket.finishConnect() } catch {
                closeConnection(fd, c, now: now)
                return
            }
        }
        if c.written < c.outbound.count {
            do throws(PosixError) {
                let n = try c.socket.write(c.outbound, from: c.written)
                c.written += n
                // Progress keeps a connection alive; waiting on a stalled peer does not.
                if n > 0 { c.deadline = max(c.deadline, now + Daemon.connectionTimeout) }
            } catch {
                closeConnection(fd, c, now: now)
                return
            }
            if c.written == c.outbound.count {
                if c.closeAfterWrite {
                    closeConnection(fd, c, now: now)
                    return
                }
                // Sent: the buffer (a whole chunk reply) is freed now, not kept while the connection idles.
                c.outbound = []
                c.written = 0
            }
        }
        guard events.contains(.readable) || events.contains(.failed) else { return }
        let count: Int?
        do throws(PosixError) { count = try c.socket.read(into: &readBuffer) } catch {
            closeConnection(fd, c, now: now)
            return
        }
        guard let count else { return }
        if count == 0 {
            closeConnection(fd, c, now: now)  // requests still pending on it have failed
            return
        }
        switch c.kind {
        case .control:
            c.inbound += readBuffer[0..<count]
            if c.inbound.count > ControlProtocol.Request.lineByteCountMax {
                closeConnection(fd, c, now: now)
            } else if let nl = c.inbound.firstIndex(of: 0x0a) {
                let request = ControlProtocol.Request(line: Array(c.inbound[0..<nl]))
                c.outbound = Array(ControlProtocol.respond(to: request, daemon: self, now: now).utf8)
                c.closeAfterWrite = true
            }
        case .peer(let id):
            readBuffer.withUnsafeBytes { c.framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            do throws(WireError) {
                while let frame = try c.framer.nextFrame() {
                    // The reply must be queued before the next request is handled (replies go out in request
                    // order); the node answers at once or after one chunk read, both within a flush. A request
                    // it does not answer (refused, or not a request) ends the connection.
                    let before = c.replies
                    node.handleStreamFrame(frame, stream: .accepted(id), now: now)
                    flushNode(now: now)
                    guard c.replies > before || node.answersLater(connection: id) else {
                        c.closeAfterWrite = true
                        if c.written == c.outbound.count { closeConnection(fd, c, now: now) }
                        return
                    }
                    // Answered: the frame opened with the fleet key (one that does not is never answered).
                    c.authenticated = true
                }
                // Until a frame has authenticated, reads do not buy time.
                if c.authenticated { c.deadline = now + Daemon.connectionTimeout }
            } catch {
                node.handleRefusedFrame(error, from: c.host ?? node.address)
                closeConnection(fd, c, now: now)
            }
        case .outgoing:
            readBuffer.withUnsafeBytes { c.framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            do throws(WireError) {
                while let frame = try c.framer.nextFrame() {
                    guard !c.pending.isEmpty else {
                        // A reply nobody asked for: the peer is out of step.
                        closeConnection(fd, c, now: now)
                        return
                    }
                    let sid = c.pending[0]
                    node.handleStreamFrame(frame, stream: .outgoing(sid), now: now)
                    // A chunk comes in pieces, each a frame; the request is answered with its last.
                    if !node.awaitsMoreFrames(stream: sid), c.pending.first == sid { c.pending.removeFirst() }
                }
                c.deadline = now + (c.pending.isEmpty ? Daemon.idleTimeout : Daemon.connectionTimeout)
                wakeWhenFrameCompletes(c)
            } catch {
                node.handleRefusedFrame(error, from: c.host ?? node.address)
                closeConnection(fd, c, now: now)
            }
        }
    }

    /// A reply (a chunk, 64 KiB) arrives in dozens of segments: the connection is polled readable only once
    /// the rest of the frame in progress is in, so the loop turns once per frame instead of once per segment.
    func wakeWhenFrameCompletes(_ c: Connection) {
        // Below half the receive buffer: the kernel wakes a reader short of its mark only once the window has
        // all but closed, which would stall the peer while the loop waits.
        let buffer = config.transferReceiveBuffer
        let cap = buffer > 0 ? min(Daemon.lowWaterMax, buffer / 2) : Daemon.lowWaterMax
        let needed = min(c.framer.bytesToNextFrame, cap)
        guard needed != c.lowWater else { return }
        do throws(PosixError) { try c.socket.setReceiveLowWater(needed) } catch { return }
        c.lowWater = needed
    }

    /// An outgoing connection to `address` that can take one more request.
    func openConnection(to address: SocketAddress) -> Connection? {
        for c in connections.values {
            if case .outgoing(let a) = c.kind, a == address, c.pending.count < Daemon.pipelineMax { return c }
        }
        return nil
    }

    /// Closes a connection; the requests still pending on an outgoing one have failed.
    func closeConnection(_ fd: Int32, _ c: Connection, now: UInt64) {
        connections[fd] = nil
        for sid in c.pending { node.handleStreamFailed(id: sid, now: now) }
        c.pending = []
    }
}
