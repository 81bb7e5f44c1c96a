import EquicastCore
import EquicastCrypto
import EquicastPosix

/// The daemon's loop: signals, timers, draining the node (the daemon is its `NodeDriver`), waiting in poll()
/// and handing what is ready to the node, the connections and the SNMP subagent.
extension Daemon {
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
            flushChurnLog(now: now)
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
                    socket: socket, kind: .outgoing(address: to), deadline: now + Daemon.connectionTimeout,
                    keyIDs: keyIDs)
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
        logEvent(e, now: now)
        notifySNMP(e)
        switch e {
        case .releaseDownloaded:
            pipeline.chunksCompleteAt = now
            pipeline.resumeAfterDownload = true
        case .releaseResumed:
            pipeline.updateReason = ""
            setUpdate(.downloading, now: now)
            if pipeline.image == nil { openImage(now: now) }
        case .releaseAccepted(_, let installable):
            pipeline.chunksCompleteAt = nil
            if installable { setUpdate(.downloading, now: now) }
        default: break
        }
    }

    /// Logs the summary of membership changes held back, once their window is over.
    func flushChurnLog(now: UInt64) {
        if let (level, line) = churnLog.flush(now: now) { log.log(level, line) }
    }

    /// Whether a membership change of `kind` gets its own log line (`ChurnLog`).
    func churn(_ kind: ChurnLog.Kind, now: UInt64) -> Bool {
        flushChurnLog(now: now)
        return churnLog.admit(kind)
    }

    func logEvent(_ e: NodeEvent, now: UInt64) {
        switch e {
        case .memberJoined(let id, let a):
            if churn(.joined, now: now) { log.log(.info, "member \(id) joined from \(a)") }
        case .memberSuspect(let id):
            if churn(.suspect, now: now) { log.log(.info, "member \(id) is suspect") }
        case .memberFailed(let id):
            if churn(.failed, now: now) { log.log(.warning, "member \(id) failed") }
        case .memberLeft(let id):
            if churn(.left, now: now) { log.log(.info, "member \(id) left") }
        case .memberRecovered(let id):
            if churn(.recovered, now: now) { log.log(.info, "member \(id) is alive again") }
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
                "peer \(peer) at \(address) answered for chunk \(chunk) of release \(release.shortHex) with bytes "
                    + "that do not match its signed manifest; it is no longer asked")
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
        if pipeline.hook != nil || pipeline.resumeAfterDownload { wake = min(wake, now + 100) }
        if pipeline.imageBusy { wake = now }
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
}

/// The daemon as the driver of its node, at one moment of its loop.
struct DaemonNodeDriver: NodeDriver {
    let daemon: Daemon
    let now: UInt64

    func carryOut(_ request: StorageRequest, for node: Node) { daemon.carryOut(request, now: now) }
    func send(_ transmit: Transmit, from node: Node) { daemon.send(transmit, now: now) }
    func handle(_ event: NodeEvent, of node: Node) { daemon.handle(event, now: now) }
}
