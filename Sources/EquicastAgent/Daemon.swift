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
    #if canImport(EquicastSNMP)
        var snmp: SubAgent?
        var nextSNMPSnapshot: UInt64 = 0
    #endif

    final class Connection {
        enum Kind {
            case peer(accepted: UInt64)
            case outgoing(stream: UInt64)
            case control
        }
        let socket: StreamSocket
        let kind: Kind
        var framer = StreamFramer()
        var inbound: [UInt8] = []
        var outbound: [UInt8] = []
        var written = 0
        var closeAfterWrite = false
        let deadline: UInt64

        init(socket: StreamSocket, kind: Kind, deadline: UInt64) {
            self.socket = socket
            self.kind = kind
            self.deadline = deadline
        }
    }

    /// Connections idle longer than this are closed (a sync is one request and one response).
    static let connectionTimeout: UInt64 = 10_000
    static let connectionsMax = 64

    public init(config: AgentConfig, configPath: String?) throws(AgentError) {
        self.config = config
        self.configPath = configPath
        self.log = Logger(level: config.logLevel)
        let now = MonotonicClock.milliseconds()
        startedAt = now
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

    func flushNode(now: UInt64) {
        handleStorage(now: now)
        while let t = node.pollTransmit() {
            switch t {
            case .datagram(let to, let bytes):
                do throws(PosixError) { _ = try udp.send(bytes, to: to) } catch {
                    log.log(.debug, "send to \(to): \(error)")
                }
            case .streamOpen(let sid, let to, let bytes):
                do throws(PosixError) {
                    let socket = try StreamSocket.connect(to: to)
                    let c = Connection(
                        socket: socket, kind: .outgoing(stream: sid), deadline: now + Daemon.connectionTimeout)
                    c.outbound = bytes
                    connections[socket.fd] = c
                } catch {
                    log.log(.debug, "sync with \(to): \(error)")
                    node.handleStreamFailed(id: sid, now: now)
                }
            case .streamReply(let connection, let bytes):
                for c in connections.values {
                    if case .peer(let id) = c.kind, id == UInt64(connection) {
                        c.outbound += bytes
                        c.closeAfterWrite = true
                    }
                }
            }
        }
        while let e = node.pollEvent() {
            logEvent(e)
            notifySNMP(e)
            switch e {
            case .releaseDownloaded: resumeAfterDownload = true
            case .releaseResumed:
                updateReason = ""
                setUpdate(.downloading, now: now)
            case .releaseAccepted(_, let installable) where installable: setUpdate(.downloading, now: now)
            default: break
            }
        }
        handleStorage(now: now)
        if node.hasPendingTransmits { flushNode(now: now) }
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
        if hook != nil || resumeAfterDownload { wake = min(wake, now + 100) }
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
        for (fd, c) in connections where after >= c.deadline { closeConnection(fd, c, failed: true, now: after) }
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
                closeConnection(fd, c, failed: true, now: now)
                return
            }
        }
        if c.written < c.outbound.count {
            do throws(PosixError) {
                c.written += try c.socket.write(c.outbound, from: c.written)
            } catch {
                closeConnection(fd, c, failed: true, now: now)
                return
            }
            if c.written == c.outbound.count && c.closeAfterWrite {
                closeConnection(fd, c, failed: false, now: now)
                return
            }
        }
        guard events.contains(.readable) || events.contains(.failed) else { return }
        let bytes: [UInt8]?
        do throws(PosixError) { bytes = try c.socket.read() } catch {
            closeConnection(fd, c, failed: true, now: now)
            return
        }
        guard let bytes else { return }
        if bytes.isEmpty {
            closeConnection(fd, c, failed: !c.closeAfterWrite, now: now)
            return
        }
        switch c.kind {
        case .control:
            c.inbound += bytes
            if c.inbound.count > 1024 {
                closeConnection(fd, c, failed: true, now: now)
            } else if let nl = c.inbound.firstIndex(of: 0x0a) {
                let request = String(decoding: c.inbound[0..<nl], as: UTF8.self)
                c.outbound = Array(ControlProtocol.respond(to: request, daemon: self, now: now).utf8)
                c.closeAfterWrite = true
            }
        case .peer(let id), .outgoing(let id):
            c.framer.append(bytes)
            do throws(WireError) {
                while let frame = try c.framer.nextFrame() {
                    if case .peer = c.kind {
                        node.handleStreamFrame(frame, stream: .accepted(id), now: now)
                    } else {
                        node.handleStreamFrame(frame, stream: .outgoing(id), now: now)
                        closeConnection(fd, c, failed: false, now: now)
                        return
                    }
                }
            } catch {
                log.log(.debug, "stream refused: \(error)")
                closeConnection(fd, c, failed: true, now: now)
            }
        }
    }

    func closeConnection(_ fd: Int32, _ c: Connection, failed: Bool, now: UInt64) {
        connections[fd] = nil
        if failed, case .outgoing(let sid) = c.kind { node.handleStreamFailed(id: sid, now: now) }
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
