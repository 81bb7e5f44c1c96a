import EquicastCore
import EquicastCrypto
import EquicastPosix

#if canImport(EquicastSNMP)
    import EquicastSNMP
#endif

/// equicastd's driver: one thread, one poll() loop over the UDP socket, the TCP listener, TCP connections and
/// the control socket, feeding the sans-IO `Node` and carrying out what it asks.
public final class Daemon {
    let config: AgentConfig
    var log: Logger
    let node: Node
    let udp: UDPSocket
    let tcp: Listener
    let control: Listener
    var connections: [Int32: Connection] = [:]
    /// Every stream read lands here first (one buffer, not one allocation per read).
    var readBuffer = [UInt8](repeating: 0, count: 65536)
    var poller = Poller()
    let startedAt: UInt64
    var terminateRequestedAt: UInt64?
    let configPath: String?
    let releaseStore: ReleaseStore?
    var record: UpdateRecord
    var hook: Hook?
    var resumeAfterDownload = false
    /// The update admin status (EQUICAST-LITE-MIB::equicastUpdateAdminStatus): when true, a verified release
    /// stays staged instead of being installed. Kept in StateDirectory/update-admin-status.
    var installsDeferred = false
    /// Why the update last failed or rolled back (for the notification).
    var updateReason = ""
    /// When the update state last changed (or the agent started), and when the held release's last chunk was
    /// verified: the control socket's status reports how long ago, so a watcher polling now and then still
    /// learns when to the millisecond.
    var updateChangedAt: UInt64 = 0
    var chunksCompleteAt: UInt64?
    /// The held release's image while its chunks arrive (installable releases only), whether it has work for
    /// the next loop turns (chunks found already stored), and whether every chunk is here and it is being
    /// read back and verified.
    var image: ImageBuilder?
    var imageBusy = false
    var imageFinishing = false
    #if canImport(EquicastSNMP)
        var snmp: SubAgent?
        var nextSNMPSnapshot: UInt64 = 0
    #endif

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
        var framer = StreamFramer()
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

        init(socket: StreamSocket, kind: Kind, deadline: UInt64) {
            self.socket = socket
            self.kind = kind
            self.deadline = deadline
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
    static let connectionsMax = 64

    public init(config: AgentConfig, configPath: String?) throws(AgentError) {
        self.config = config
        self.configPath = configPath
        self.log = Logger(level: config.logLevel)
        let now = MonotonicClock.milliseconds()
        startedAt = now
        updateChangedAt = now
        let state: NodeState
        let key: SymmetricKey
        do throws(PosixError) {
            state = try NodeState.loadAndAdvance(directory: config.stateDirectory)
            key = try KeyFile.loadSymmetric(config.fleetKeyFile)
            udp = try UDPSocket(bindingTo: config.bindAddress)
            tcp = try Listener(tcp: udp.localAddress)
            control = try Listener(unixPath: config.effectiveControlSocket)
            releaseStore = try ReleaseStore(stateDirectory: config.stateDirectory)
        } catch {
            throw .startup(error)
        }
        let kept = releaseStore?.loadRecord()
        record = kept ?? UpdateRecord()
        if kept == nil {
            record.installedVersion = config.firmwareVersion
            record.state = config.firmwareVersion > 0 ? .committed : .idle
        }
        let releaseSettings = try Daemon.releaseSettings(config, record: kept)
        guard let (announced, how) = Daemon.addressToAnnounce(config: config, bound: udp.localAddress) else {
            throw .config(
                .invalid(
                    key: "AdvertiseAddress",
                    reason: "BindAddress \(config.bindAddress) is a wildcard and no address to announce was found "
                        + "(no route to a seed, no interface up); set AdvertiseAddress"))
        }
        let keyring = try! FleetKeyring(primary: FleetKey(master: key))  // one key cannot clash with itself
        node = Node(
            id: state.id, address: announced, bootCount: state.bootCount, keyring: keyring,
            encryptionEnabled: config.encryptionEnabled, config: config.membership, seeds: config.seeds,
            randomSeed: secureRandomBytes(32), now: now, release: releaseSettings)
        log.log(
            .info,
            "equicastd \(AgentVersion.string) node \(state.id) (boot \(state.bootCount)) listening on \(udp.localAddress)"
                + ", announcing \(announced)\(how)"
                + (config.seeds.isEmpty ? "" : ", joining through \(config.seeds.count) seed(s)"))
        if releaseSettings.trustedKeys.isEmpty {
            log.log(.info, "no ReleasePublicKeyFile: this node neither installs nor spreads releases")
        } else {
            log.log(
                .info,
                "product \(config.product), firmware version \(record.installedVersion) (\(record.state.name)), "
                    + "\(releaseSettings.trustedKeys.count) trusted release key(s)")
        }
        installsDeferred = Daemon.loadAdminStatus(config.stateDirectory, log: &log)
        if installsDeferred { log.log(.info, "installs are deferred (update admin status 'defer')") }
        restoreReleases(now: now)
        startSNMP(now: now)
        flushNode(now: now)
    }

    /// What the node tells others to reach it by, and (for the log) how it was chosen when not configured.
    static func addressToAnnounce(config: AgentConfig, bound: SocketAddress) -> (SocketAddress, String)? {
        if let a = config.advertiseAddress { return (a.port == 0 ? a.with(port: bound.port) : a, "") }
        if !bound.isUnspecified { return (bound, "") }
        for seed in config.seeds where seed.family == bound.family {
            if let source = try? AddressDiscovery.sourceAddress(towards: seed), !source.isUnspecified {
                return (source.with(port: bound.port), " (source address of the route to seed \(seed))")
            }
        }
        if let (address, interface) = AddressDiscovery.interfaceAddress(bound.family) {
            return (address.with(port: bound.port), " (first address of interface \(interface))")
        }
        return nil
    }

    /// Runs until a graceful leave completes (SIGTERM or SIGINT).
    public func run() throws(AgentError) {
        Signals.install()
        while true {
            let now = MonotonicClock.milliseconds()
            let signals = Signals.take()
            if signals.terminate && terminateRequestedAt == nil {
                log.log(.info, "leaving the fleet")
                terminateRequestedAt = now
                node.handleCommand(.leave, now: now)
            }
            if signals.reload { reload() }
            if node.pollTimeout() <= now { node.handleTimeout(now: now) }
            flushNode(now: now)
            pollHook(now: now)
            pollImage(now: now)
            flushNode(now: now)
            if let t = terminateRequestedAt, node.leaveComplete || now >= t + 3_000 {
                log.log(.info, "left")
                stopSNMP()
                return
            }
            try waitAndHandle(now: now)
        }
    }

    func reload() {
        guard let configPath else { return }
        var fresh = AgentConfig()
        do throws(ConfigError) {
            let text: [UInt8]
            do throws(PosixError) { text = try FileSystem.readFile(configPath, limit: 1 << 20) } catch {
                throw .unreadable(error)
            }
            try fresh.apply(fileText: String(decoding: text, as: UTF8.self), source: configPath)
            log.level = fresh.logLevel
            log.log(.info, "reloaded \(configPath): log level \(fresh.logLevel); other settings apply at restart")
        } catch {
            log.log(.error, "reload failed, keeping the running configuration: \(error)")
        }
    }

    /// Drains the node's outputs in its drain order (`Node.drain(into:)`).
    func flushNode(now: UInt64) {
        var driver = DaemonNodeDriver(daemon: self, now: now)
        node.drain(into: &driver)
    }

    /// Sends one transmit: a datagram, a request on a new or idle connection, or a reply.
    func send(_ t: Transmit, now: UInt64) {
        switch t {
        case .datagram(let to, let bytes):
            do throws(PosixError) { _ = try udp.send(bytes, to: to) } catch {
                log.log(.debug, "send to \(to): \(error)")
            }
        case .streamOpen(let sid, let to, let bytes):
            if let c = openConnection(to: to) {
                c.queue(bytes)
                if c.pending.isEmpty { c.deadline = now + Daemon.connectionTimeout }
                c.pending.append(sid)
                return
            }
            do throws(PosixError) {
                let socket = try StreamSocket.connect(to: to, receiveBuffer: config.transferReceiveBuffer)
                let c = Connection(
                    socket: socket, kind: .outgoing(address: to), deadline: now + Daemon.connectionTimeout)
                c.outbound = bytes
                c.pending = [sid]
                connections[socket.fd] = c
            } catch {
                log.log(.debug, "connect to \(to): \(error)")
                node.handleStreamFailed(id: sid, now: now)
            }
        case .streamReply(let connection, let bytes), .streamPart(let connection, let bytes):
            for c in connections.values {
                if case .peer(let id) = c.kind, id == UInt64(connection) {
                    c.queue(bytes)
                    c.replies += 1
                }
            }
        }
    }

    /// Logs an event, tells SNMP managers, and acts on the release events.
    func handle(_ e: NodeEvent, now: UInt64) {
        logEvent(e)
        notifySNMP(e)
        switch e {
        case .releaseDownloaded:
            chunksCompleteAt = now
            resumeAfterDownload = true
        case .releaseResumed:
            updateReason = ""
            setUpdate(.downloading, now: now)
            if image == nil { openImage(now: now) }
        case .releaseAccepted(_, let installable):
            chunksCompleteAt = nil
            if installable { setUpdate(.downloading, now: now) }
        default: break
        }
    }

    func logEvent(_ e: NodeEvent) {
        switch e {
        case .memberJoined(let id, let a): log.log(.info, "member \(id) joined from \(a)")
        case .memberSuspect(let id): log.log(.info, "member \(id) is suspect")
        case .memberFailed(let id): log.log(.warning, "member \(id) failed")
        case .memberLeft(let id): log.log(.info, "member \(id) left")
        case .memberRecovered(let id): log.log(.info, "member \(id) is alive again")
        case .refuted(let inc): log.log(.info, "refuted a suspicion about this node (incarnation \(inc))")
        case .eventReceived(let ev): log.log(.info, "broadcast \(ev.id) from \(ev.origin): \(ev.payload.count) bytes")
        case .refused(let error, let from): log.log(.debug, "refused a frame from \(from): \(error)")
        case .releaseAccepted(let a, let installable):
            log.log(
                .info,
                "release \(a.releaseID.shortHex) version \(a.version): manifest verified, "
                    + (installable ? "downloading" : "spreading it (not for this device)"))
        case .releaseRefused(let error, let from): log.log(.warning, "refused a release from \(from): \(error)")
        case .releaseDownloaded(let id): log.log(.info, "release \(id.shortHex): every chunk verified")
        case .releaseResumed(let id): log.log(.info, "release \(id.shortHex): trying the download again")
        case .integrityViolation(let peer, let address, let release, let chunk):
            log.log(
                .warning,
                "peer \(peer) at \(address) served chunk \(chunk) of release \(release.shortHex) that does "
                    + "not match its id; it is no longer asked")
        }
    }

    func waitAndHandle(now: UInt64) throws(AgentError) {
        var watch: [(fd: Int32, events: PollEvents)] = [
            (udp.fd, .readable), (tcp.fd, .readable), (control.fd, .readable),
        ]
        var wake = node.pollTimeout()
        for (fd, c) in connections {
            let wantsWrite = c.socket.connecting || c.written < c.outbound.count
            watch.append((fd, wantsWrite ? .readable | .writable : .readable))
            wake = min(wake, c.deadline)
        }
        if terminateRequestedAt != nil { wake = min(wake, now + 50) }
        // A hook's end interrupts the wait (SIGCHLD); this bounds the wait should it end just before it starts.
        if hook != nil || resumeAfterDownload { wake = min(wake, now + 100) }
        if imageBusy { wake = now }
        let snmpFDs = snmpWatch(now: now, wake: &wake)
        for fd in snmpFDs { watch.append((fd, .readable)) }
        poller.watch(watch)
        let timeout = Int32(min(wake > now ? wake - now : 0, 1000))
        let ready: [(fd: Int32, events: PollEvents)]
        do throws(PosixError) { ready = try poller.wait(timeoutMilliseconds: timeout) } catch { throw .runtime(error) }
        let after = MonotonicClock.milliseconds()
        var snmpReadable: [Int32] = []
        for (fd, events) in ready {
            if snmpFDs.contains(fd) {
                snmpReadable.append(fd)
            } else if fd == udp.fd {
                receiveDatagrams(now: after)
            } else if fd == tcp.fd {
                acceptAll(tcp, control: false, now: after)
            } else if fd == control.fd {
                acceptAll(control, control: true, now: after)
            } else if let c = connections[fd] {
                service(c, events: events, now: after)
            }
        }
        for (fd, c) in connections where after >= c.deadline { closeConnection(fd, c, now: after) }
        snmpProcess(readable: snmpReadable, now: after)
    }

    func receiveDatagrams(now: UInt64) {
        // Bounded per wake-up so a flood cannot starve timers and streams.
        for _ in 0..<256 {
            let datagram: UDPSocket.Datagram?
            do throws(PosixError) { datagram = try udp.receive(capacity: Frame.headerByteCount + 8192 + 1) } catch {
                log.log(.debug, "recvfrom: \(error)")
                return
            }
            guard let d = datagram else { return }
            node.handleDatagram(d.bytes, from: d.from, now: now)
        }
    }

    var nextAcceptID: UInt64 = 1

    func acceptAll(_ listener: Listener, control isControl: Bool, now: UInt64) {
        while connections.count < Daemon.connectionsMax {
            let accepted: StreamSocket?
            do throws(PosixError) { accepted = try listener.accept() } catch {
                log.log(.warning, "accept: \(error)")
                return
            }
            guard let socket = accepted else { return }
            let kind: Connection.Kind = isControl ? .control : .peer(accepted: nextAcceptID)
            nextAcceptID += 1
            connections[socket.fd] = Connection(socket: socket, kind: kind, deadline: now + Daemon.connectionTimeout)
        }
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
            if c.inbound.count > 1024 {
                closeConnection(fd, c, now: now)
            } else if let nl = c.inbound.firstIndex(of: 0x0a) {
                let request = String(decoding: c.inbound[0..<nl], as: UTF8.self)
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
                }
                c.deadline = now + Daemon.connectionTimeout
            } catch {
                log.log(.debug, "stream refused: \(error)")
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
                log.log(.debug, "stream refused: \(error)")
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

/// Why the daemon could not start or had to stop.
public enum AgentError: Error, CustomStringConvertible {
    case startup(PosixError)
    case runtime(PosixError)
    case config(ConfigError)

    public var description: String {
        switch self {
        case .startup(let e): return "cannot start: \(e)"
        case .runtime(let e): return "stopped: \(e)"
        case .config(let e): return "configuration: \(e)"
        }
    }
}

/// The daemon as the driver of its node, at one moment of its loop.
struct DaemonNodeDriver: NodeDriver {
    let daemon: Daemon
    let now: UInt64

    func carryOut(_ request: StorageRequest, for node: Node) { daemon.carryOut(request, now: now) }
    func send(_ transmit: Transmit, from node: Node) { daemon.send(transmit, now: now) }
    func handle(_ event: NodeEvent, of node: Node) { daemon.handle(event, now: now) }
}
